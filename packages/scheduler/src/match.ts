import type { Address, CapacityAdvert, JobSpec } from '@kiln/protocol'

/** A live provider as the scheduler sees it: its latest advert plus what we know locally. */
export interface ProviderCandidate {
  address: Address
  advert: CapacityAdvert
  /** Jobs this coordinator has placed on it that have not ended. */
  activeJobs: number
}

export type Constraint = 'unavailable' | 'busy' | 'excluded' | 'price' | 'cpu' | 'memory' | 'gpu_count' | 'gpu_model' | 'gpu_vram' | 'region'

export interface NearestOffer {
  provider: Address
  pricePerHour: number
  /** The constraints this provider fails; the fewer, the nearer. */
  fails: Constraint[]
}

export type MatchResult =
  | { ok: true; provider: ProviderCandidate; pricePerHour: number; score: number }
  | { ok: false; total: number; excluded: Partial<Record<Constraint, number>>; nearest: NearestOffer[] }

export interface MatchOptions {
  exclude?: readonly Address[]
  /** How many jobs one provider runs at once (the sandbox runs one per GPU set; CPU providers one). */
  maxActiveJobs?: number
}

/** Every hard constraint `p` fails for `spec`; empty means it can take the job. */
export function failedConstraints(spec: JobSpec, p: ProviderCandidate, opts: MatchOptions = {}): Constraint[] {
  const a = p.advert
  const fails: Constraint[] = []
  if (!a.available) fails.push('unavailable')
  if (p.activeJobs >= (opts.maxActiveJobs ?? 1)) fails.push('busy')
  if (opts.exclude?.includes(p.address)) fails.push('excluded')
  if (a.pricePerHour > spec.maxPricePerHour) fails.push('price')
  if (a.free.cpu < spec.resources.cpu) fails.push('cpu')
  if (a.free.memoryMb < spec.resources.memoryMb) fails.push('memory')
  const want = spec.resources.gpu
  if (want.count > 0) {
    const models = want.models.map((m) => m.toLowerCase())
    const modelOk = (model: string) => models.length === 0 || models.some((m) => model.toLowerCase().includes(m))
    const usable = a.hardware.gpus.filter((g) => modelOk(g.model) && g.vramMb >= want.minVramMb)
    if (a.free.gpus < want.count || a.hardware.gpus.length < want.count) fails.push('gpu_count')
    else if (!a.hardware.gpus.some((g) => modelOk(g.model))) fails.push('gpu_model')
    else if (usable.length < want.count) fails.push('gpu_vram')
  }
  if (spec.region && a.region !== spec.region) fails.push('region')
  return fails
}

/**
 * Lower is better. Price dominates; then fit (the smallest adequate machine, so that big
 * machines stay free for big jobs); then load.
 */
export function score(spec: JobSpec, p: ProviderCandidate): number {
  const a = p.advert
  const priceShare = a.pricePerHour / Math.max(1, spec.maxPricePerHour)
  const spareCpu = (a.free.cpu - spec.resources.cpu) / Math.max(1, a.hardware.cpuCores)
  const spareMem = (a.free.memoryMb - spec.resources.memoryMb) / Math.max(1, a.hardware.memoryMb)
  const spareGpu = (a.free.gpus - spec.resources.gpu.count) / Math.max(1, a.hardware.gpus.length)
  return priceShare * 10 + (spareCpu + spareMem + spareGpu * 2) + p.activeJobs * 0.5
}

/** Places one job: filter by hard constraints, then take the best score. Ties go to the lower address. */
export function matchJob(spec: JobSpec, candidates: readonly ProviderCandidate[], opts: MatchOptions = {}): MatchResult {
  let best: { p: ProviderCandidate; s: number } | undefined
  const excluded: Partial<Record<Constraint, number>> = {}
  const near: NearestOffer[] = []
  for (const p of candidates) {
    const fails = failedConstraints(spec, p, opts)
    if (fails.length === 0) {
      const s = score(spec, p)
      if (!best || s < best.s || (s === best.s && p.address < best.p.address)) best = { p, s }
      continue
    }
    for (const f of fails) excluded[f] = (excluded[f] ?? 0) + 1
    near.push({ provider: p.address, pricePerHour: p.advert.pricePerHour, fails })
  }
  if (best) return { ok: true, provider: best.p, pricePerHour: best.p.advert.pricePerHour, score: best.s }
  near.sort((x, y) => x.fails.length - y.fails.length || x.pricePerHour - y.pricePerHour)
  return { ok: false, total: candidates.length, excluded, nearest: near.slice(0, 3) }
}

/** A one-line reason for a job that cannot be placed, for logs and the CLI. */
export function explainNoMatch(r: Extract<MatchResult, { ok: false }>): string {
  if (r.total === 0) return 'no provider is online; the job waits and is matched when one comes'
  const parts = Object.entries(r.excluded).map(([k, n]) => `${n} ${k}`)
  return `none of ${r.total} providers fits (excluded by: ${parts.join(', ')})`
}
