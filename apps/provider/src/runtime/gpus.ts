import { gpuMismatch, type GpuInfo, type GpuMismatch, type GpuNeed } from '@kiln/protocol'

export type GpuPick = { ids: string[] } | { problem: string }

const WHY: Record<GpuMismatch, string> = {
  gpu_count: 'not enough GPUs',
  gpu_model: 'no GPU of an asked model',
  gpu_vram: 'not enough GPUs with the asked VRAM',
}

function describe(need: GpuNeed): string {
  const model = need.models.length > 0 ? ` of model ${need.models.join(' or ')}` : ''
  const vram = need.minVramMb > 0 ? ` with at least ${need.minVramMb} MiB` : ''
  return `${need.count} GPU${need.count === 1 ? '' : 's'}${model}${vram}`
}

/**
 * The concrete GPUs (nvidia-smi indexes, as strings for DeviceIDs) a job gets: the first
 * `need.count` that fit and are not `busy` (indexes held by other runs). Whether one GPU
 * fits is the protocol's one fit rule (gpuMismatch) asked of that GPU alone, so the
 * provider picks exactly the GPUs the scheduler and admission counted. The problem says
 * whether the machine can never take the job or its fitting GPUs are taken now.
 */
export function pickGpus(need: GpuNeed, gpus: readonly GpuInfo[], busy: ReadonlySet<number> = new Set()): GpuPick {
  if (need.count === 0) return { ids: [] }
  const never = gpuMismatch(need, gpus)
  if (never) return { problem: `the job needs ${describe(need)}: ${WHY[never]} on this machine` }
  const one = { ...need, count: 1 }
  const fitting = gpus.filter((g) => gpuMismatch(one, [g]) === undefined)
  const free = fitting.filter((g) => !busy.has(g.index))
  if (free.length < need.count)
    return {
      problem: `the job needs ${describe(need)}: ${fitting.length} fit, ${fitting.length - free.length} of them busy (${fitting
        .filter((g) => busy.has(g.index))
        .map((g) => g.index)
        .join(', ')})`,
    }
  return { ids: free.slice(0, need.count).map((g) => String(g.index)) }
}
