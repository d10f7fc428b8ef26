import type { GpuInfo, JobSpec } from './schemas.ts'

/** Why a machine's GPUs can never take a job, whatever is free on it. */
export type GpuMismatch = 'gpu_count' | 'gpu_model' | 'gpu_vram'

/** A job's GPU request, normalised for matching: `models` in lower case. */
export interface GpuNeed {
  count: number
  minVramMb: number
  models: readonly string[]
}

export function gpuNeed(request: JobSpec['resources']['gpu']): GpuNeed {
  return { count: request.count, minVramMb: request.minVramMb, models: request.models.map((m) => m.toLowerCase()) }
}

/**
 * The one GPU-fit rule, shared by the scheduler's placement and the provider's admission so
 * that a provider never refuses a lease the scheduler thought it fits: at least `need.count`
 * GPUs that are each of an asked model (case-insensitive substring; none asked means any)
 * and each have `need.minVramMb`. The checks go count, model, VRAM, and the first that fails
 * is the reason. `models` are the GPUs' models in lower case; the scheduler keeps them so,
 * since this runs for every provider it examines.
 */
export function gpuMismatch(
  need: GpuNeed,
  gpus: readonly Pick<GpuInfo, 'vramMb' | 'model'>[],
  models: readonly string[] = gpus.map((g) => g.model.toLowerCase()),
): GpuMismatch | undefined {
  if (need.count === 0) return undefined
  if (gpus.length < need.count) return 'gpu_count'
  let modelOk = false
  let usable = 0
  for (let i = 0; i < gpus.length; i++) {
    const m = models[i]!
    if (need.models.length > 0 && !need.models.some((want) => m.includes(want))) continue
    modelOk = true
    if (gpus[i]!.vramMb >= need.minVramMb) usable++
  }
  if (!modelOk) return 'gpu_model'
  return usable < need.count ? 'gpu_vram' : undefined
}
