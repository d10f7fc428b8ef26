import { spawn } from 'node:child_process'
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'

const ROOT = resolve(import.meta.dirname, '../../..')

export interface CommandResult {
  code: number | null
  stdout: string
  stderr: string
}

/** The real `kiln-provider` command, as a person runs it. */
export function kilnProvider(args: string[], env: Record<string, string> = {}): Promise<CommandResult> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'apps/provider/src/bin.ts'), ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()))
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
    child.on('error', fail)
    child.on('exit', (code) => {
      clearTimeout(timer)
      done({ code, stdout, stderr })
    })
  })
}

/**
 * A stand-in for the NVIDIA driver's `nvidia-smi`: these machines have no GPU. It prints the
 * CSV a real one prints for the queries the provider makes; the test changes what runs "on
 * the GPU" by rewriting apps.csv. Everything around it (the daemon, the mesh, the
 * marketplace) is real.
 */
export class FakeNvidiaSmi {
  readonly path: string
  constructor(
    readonly dir: string,
    gpus = '0, NVIDIA GeForce RTX 4090, 24564, 550.54.15, 87, 64',
  ) {
    mkdirSync(dir, { recursive: true })
    this.path = join(dir, 'nvidia-smi')
    writeFileSync(join(dir, 'gpus.csv'), `${gpus}\n`)
    this.setProcesses([])
    writeFileSync(
      this.path,
      `#!/bin/sh
D="$(dirname "$0")"
case "$1" in
  --query-gpu=*) cat "$D/gpus.csv" ;;
  --query-compute-apps=*) cat "$D/apps.csv" ;;
  *) echo "| NVIDIA-SMI 550.54.15   Driver Version: 550.54.15   CUDA Version: 12.4 |" ;;
esac
`,
    )
    chmodSync(this.path, 0o755)
  }

  /** Atomically, so a poll never reads half a file. */
  setProcesses(procs: Array<{ pid: number; name: string; usedMemoryMb: number }>): void {
    writeFileSync(join(this.dir, 'apps.csv.tmp'), procs.map((p) => `${p.pid}, ${p.name}, ${p.usedMemoryMb}\n`).join(''))
    renameSync(join(this.dir, 'apps.csv.tmp'), join(this.dir, 'apps.csv'))
  }
}

/** The dashboard's JSON API with the token the daemon saved, as the CLI uses it. */
export function dashboardClient(dataDir: string) {
  const endpoint = JSON.parse(readFileSync(join(dataDir, 'dashboard.json'), 'utf8')) as { url: string }
  const token = readFileSync(join(dataDir, 'dashboard.token'), 'utf8').trim()
  const call = async <T>(path: string, body?: unknown): Promise<T> => {
    const res = await fetch(new URL(path, endpoint.url), {
      method: body === undefined ? 'GET' : 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    })
    if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${await res.text()}`)
    return (await res.json()) as T
  }
  return {
    url: endpoint.url,
    token,
    get: <T>(p: string) => call<T>(p),
    post: <T>(p: string, b: unknown) => call<T>(p, b),
  }
}

export interface InventoryEntry {
  address: string
  available: boolean
  reason: string | null
  pricePerHour: number
  hardware: { gpus: unknown[] }
}

/** The marketplace's public view of the network: what clients and the scheduler see. */
export async function inventory(api: string): Promise<InventoryEntry[]> {
  const res = await fetch(`${api}/trpc/network.providers`)
  const body = (await res.json()) as { result: { data: InventoryEntry[] } }
  return body.result.data
}
