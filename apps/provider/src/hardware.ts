import { execFile } from 'node:child_process'
import { statfs } from 'node:fs/promises'
import { cpus, totalmem } from 'node:os'
import { promisify } from 'node:util'
import type { GpuInfo, Hardware } from '@kiln/protocol'

const run = promisify(execFile)

export const NVIDIA_QUERY = 'index,name,memory.total,driver_version,utilization.gpu,temperature.gpu'

export interface GpuStatus extends GpuInfo {
  utilizationPct: number | null
  temperatureC: number | null
}

/**
 * Parses `nvidia-smi --query-gpu=<NVIDIA_QUERY> --format=csv,noheader,nounits`. Fields that a
 * driver reports as "[N/A]" or "[Not Supported]" become null rather than failing the row.
 */
export function parseNvidiaSmi(csv: string, cudaVersion?: string): GpuStatus[] {
  const gpus: GpuStatus[] = []
  for (const line of csv
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)) {
    const cols = line.split(',').map((c) => c.trim())
    if (cols.length < 4) continue
    const num = (s: string | undefined) => (s && /^\d+(\.\d+)?$/.test(s) ? Number(s) : null)
    const index = num(cols[0])
    const vram = num(cols[2])
    if (index === null || vram === null) continue
    gpus.push({
      index,
      model: cols[1] ?? 'unknown',
      vramMb: Math.round(vram),
      driver: cols[3] || undefined,
      cuda: cudaVersion,
      utilizationPct: num(cols[4]),
      temperatureC: num(cols[5]),
    })
  }
  return gpus
}

/** `CUDA Version: 12.4` from the nvidia-smi banner. */
export function parseCudaVersion(banner: string): string | undefined {
  return /CUDA Version:\s*([\d.]+)/.exec(banner)?.[1]
}

/** A process using a GPU, from `nvidia-smi --query-compute-apps=pid,process_name,used_memory`. */
export interface GpuProcess {
  pid: number
  name: string
  usedMemoryMb: number | null
}

export const COMPUTE_APPS_QUERY = 'pid,process_name,used_memory'

/** Parses the compute-apps CSV (noheader, nounits). Process names may contain commas; memory is the last column. */
export function parseComputeApps(csv: string): GpuProcess[] {
  const out: GpuProcess[] = []
  for (const line of csv
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)) {
    const first = line.indexOf(',')
    const pid = line.slice(0, first).trim()
    if (first < 0 || !/^\d+$/.test(pid)) continue
    const rest = line.slice(first + 1)
    const last = rest.lastIndexOf(',')
    const mem = last < 0 ? '' : rest.slice(last + 1).trim()
    const name = (last < 0 ? rest : rest.slice(0, last)).trim()
    out.push({
      pid: Number(pid),
      name: name || 'unknown',
      usedMemoryMb: /^\d+(\.\d+)?$/.test(mem) ? Number(mem) : null,
    })
  }
  return out
}

const SMI_TIMEOUT_MS = 10_000

/** Utilisation and temperature now (no banner call: this runs every few seconds). */
export async function queryGpus(nvidiaSmi: string, cudaVersion?: string): Promise<GpuStatus[]> {
  const { stdout } = await run(nvidiaSmi, [`--query-gpu=${NVIDIA_QUERY}`, '--format=csv,noheader,nounits'], {
    timeout: SMI_TIMEOUT_MS,
  })
  return parseNvidiaSmi(stdout, cudaVersion)
}

export async function queryComputeApps(nvidiaSmi: string): Promise<GpuProcess[]> {
  const { stdout } = await run(
    nvidiaSmi,
    [`--query-compute-apps=${COMPUTE_APPS_QUERY}`, '--format=csv,noheader,nounits'],
    { timeout: SMI_TIMEOUT_MS },
  )
  return parseComputeApps(stdout)
}

export async function detectGpus(nvidiaSmi = 'nvidia-smi'): Promise<{ gpus: GpuStatus[]; note?: string }> {
  try {
    const banner = await run(nvidiaSmi, [], { timeout: SMI_TIMEOUT_MS }).then(
      (r) => r.stdout,
      () => '',
    )
    return { gpus: await queryGpus(nvidiaSmi, parseCudaVersion(banner)) }
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    return {
      gpus: [],
      note:
        code === 'ENOENT'
          ? 'no NVIDIA driver (nvidia-smi not found): serving as a CPU-only provider'
          : `nvidia-smi failed, serving as a CPU-only provider: ${(e as Error).message}`,
    }
  }
}

export async function detectHardware(
  dataDir: string,
  nvidiaSmi?: string,
): Promise<{ hardware: Hardware; gpus: GpuStatus[]; note?: string }> {
  const { gpus, note } = await detectGpus(nvidiaSmi)
  const fs = await statfs(dataDir)
  const hardware: Hardware = {
    cpuCores: Math.max(1, cpus().length),
    memoryMb: Math.floor(totalmem() / 1024 / 1024),
    diskMb: Math.floor((fs.bavail * fs.bsize) / 1024 / 1024),
    gpus: gpus.map(({ index, model, vramMb, driver, cuda }) => ({
      index,
      model,
      vramMb,
      ...(driver ? { driver } : {}),
      ...(cuda ? { cuda } : {}),
    })),
  }
  return note ? { hardware, gpus, note } : { hardware, gpus }
}
