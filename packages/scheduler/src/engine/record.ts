import { gpuMismatch, gpuNeed, type Address, type GpuInfo, type GpuNeed } from '@kiln/protocol'
import { cacheNeed, heldOf, type CacheHeld, type CacheNeed } from './cache.ts'
import type { EngineConstraint, PlaceJob, PlaceOptions, ProviderInput, ProviderView, ScoreWeights } from './types.ts'

/**
 * What the engine knows about one provider. Flat and mutable on purpose: placements update it
 * in place, and the hot loop reads plain number fields of one object shape.
 */
export interface ProviderRecord {
  readonly address: Address
  operator: string
  region: string
  price: number
  available: boolean
  escrowReady: boolean
  reputation: number
  successRate: number
  latencyMs: number
  reportedLoad: number
  maxActive: number
  gpus: readonly GpuInfo[]
  /** Lower-cased models, so that matching a job's model list does not lower-case per check. */
  gpuModels: string[]
  /** Equal for machines with the same GPUs; part of the index's bucket key. */
  gpuSig: string
  /** Takes jobs that ask for network access; part of the bucket key too. */
  network: boolean
  /** The largest bond it can post now; Infinity when its advert does not say. */
  maxBond: number
  /** The images and input digests its advert says it holds. */
  held: CacheHeld
  hwCpu: number
  hwMem: number
  advertCpu: number
  advertMem: number
  advertGpus: number
  resCpu: number
  resMem: number
  resGpus: number
  active: number
  // Derived by refresh():
  freeCpu: number
  freeMem: number
  freeGpus: number
  /** Available, escrow-ready and with a free slot: the job-independent part of feasibility. */
  open: boolean
  cores: number
  memTotal: number
  gpuDen: number
  /** Load and quality terms of the score. */
  ql: number
  /** The score without price and without the job's own demand; the index bounds with it. */
  b: number
  // Index bookkeeping (owned by the bucket index).
  bucket: unknown
  band: unknown
  pos: number
}

/** A job reduced to what the checks read, computed once per placement. */
export interface JobCtx {
  cpu: number
  mem: number
  /** GPUs asked for (the same as gpu.count, kept flat for the arithmetic on the hot path). */
  gpus: number
  gpu: GpuNeed
  region: string | undefined
  network: boolean
  bondAt: ((pricePerHour: number) => number) | undefined
  maxPrice: number
  /** Weight of price per base unit for this job: w.price / maxPrice. */
  a: number
  minRep: number
  exclude: ReadonlySet<string> | undefined
  excludeOps: ReadonlySet<string> | undefined
  /** The image and inputs a provider may hold, and the job's tolerance for a holder's price. */
  need: CacheNeed
}

export interface RecordDefaults {
  maxActiveJobs: number
  defaultReputation: number
  defaultSuccessRate: number
  latencyCapMs: number
}

export function gpuSignature(gpus: readonly GpuInfo[]): string {
  return gpus
    .map((g) => `${g.model}:${g.vramMb}`)
    .sort()
    .join(',')
}

export function newRecord(p: ProviderInput, d: RecordDefaults): ProviderRecord {
  const a = p.advert
  const r: ProviderRecord = {
    address: p.address,
    operator: p.operator ?? p.address,
    region: a.region,
    price: a.pricePerHour,
    available: a.available,
    escrowReady: p.escrowReady ?? true,
    reputation: p.reputation ?? d.defaultReputation,
    successRate: d.defaultSuccessRate,
    latencyMs: 0,
    reportedLoad: 0,
    maxActive: Math.max(1, p.maxActiveJobs ?? d.maxActiveJobs),
    gpus: a.hardware.gpus,
    gpuModels: a.hardware.gpus.map((g) => g.model.toLowerCase()),
    gpuSig: gpuSignature(a.hardware.gpus),
    network: a.network === true,
    maxBond: a.maxBond ?? Infinity,
    held: heldOf(a),
    hwCpu: a.hardware.cpuCores,
    hwMem: a.hardware.memoryMb,
    advertCpu: a.free.cpu,
    advertMem: a.free.memoryMb,
    advertGpus: a.free.gpus,
    resCpu: 0,
    resMem: 0,
    resGpus: 0,
    active: 0,
    freeCpu: 0,
    freeMem: 0,
    freeGpus: 0,
    open: false,
    cores: 1,
    memTotal: 1,
    gpuDen: 1,
    ql: 0,
    b: 0,
    bucket: undefined,
    band: undefined,
    pos: -1,
  }
  return r
}

/** Applies a newer advert (and whatever else the input says) to an existing record. */
export function applyInput(r: ProviderRecord, p: ProviderInput): void {
  const a = p.advert
  r.region = a.region
  r.price = a.pricePerHour
  r.available = a.available
  if (p.operator !== undefined) r.operator = p.operator
  if (p.escrowReady !== undefined) r.escrowReady = p.escrowReady
  if (p.reputation !== undefined) r.reputation = p.reputation
  if (p.maxActiveJobs !== undefined) r.maxActive = Math.max(1, p.maxActiveJobs)
  r.gpus = a.hardware.gpus
  r.gpuModels = a.hardware.gpus.map((g) => g.model.toLowerCase())
  r.gpuSig = gpuSignature(a.hardware.gpus)
  r.network = a.network === true
  r.maxBond = a.maxBond ?? Infinity
  r.held = heldOf(a)
  r.hwCpu = a.hardware.cpuCores
  r.hwMem = a.hardware.memoryMb
  r.advertCpu = a.free.cpu
  r.advertMem = a.free.memoryMb
  r.advertGpus = a.free.gpus
}

/**
 * Recomputes the derived fields. Free capacity is the smaller of what the provider last
 * advertised and what our own reservations leave: an advert may lag behind a placement, and
 * the provider may be using capacity we do not know about.
 */
export function refresh(r: ProviderRecord, w: ScoreWeights, latencyCapMs: number): void {
  r.freeCpu = Math.max(0, Math.min(r.advertCpu, r.hwCpu - r.resCpu))
  r.freeMem = Math.max(0, Math.min(r.advertMem, r.hwMem - r.resMem))
  r.freeGpus = Math.max(0, Math.min(r.advertGpus, r.gpus.length - r.resGpus))
  r.open = r.available && r.escrowReady && r.active < r.maxActive
  r.cores = Math.max(1, r.hwCpu)
  r.memTotal = Math.max(1, r.hwMem)
  r.gpuDen = Math.max(1, r.gpus.length)
  const load = Math.max(r.active / r.maxActive, r.reportedLoad)
  r.ql =
    w.load * load +
    w.reputation * (1 - r.reputation) +
    w.successRate * (1 - r.successRate) +
    w.latency * (Math.min(r.latencyMs, latencyCapMs) / latencyCapMs)
  r.b = w.fit * (r.freeCpu / r.cores + r.freeMem / r.memTotal + (2 * r.freeGpus) / r.gpuDen) + r.ql
}

export function jobCtx(
  job: PlaceJob,
  opts: PlaceOptions,
  w: ScoreWeights,
  floor: number,
  operatorOf: (a: Address) => string,
): JobCtx {
  const s = job.spec
  const ops = opts.replicaOf
    ? [...(opts.excludeOperators ?? []), operatorOf(opts.replicaOf)]
    : (opts.excludeOperators ?? [])
  return {
    cpu: s.resources.cpu,
    mem: s.resources.memoryMb,
    gpus: s.resources.gpu.count,
    gpu: gpuNeed(s.resources.gpu),
    region: s.region,
    network: s.network,
    bondAt: job.bondAt,
    maxPrice: s.maxPricePerHour,
    a: w.price / Math.max(1, s.maxPricePerHour),
    minRep: Math.max(floor, job.minReputation ?? 0),
    exclude: opts.exclude?.length ? new Set(opts.exclude) : undefined,
    excludeOps: ops.length ? new Set(ops) : undefined,
    need: cacheNeed(s),
  }
}

/** Every hard constraint `r` fails for the job, in a fixed order; empty means it fits. */
export function failures(r: ProviderRecord, j: JobCtx): EngineConstraint[] {
  const f: EngineConstraint[] = []
  if (!r.available) f.push('unavailable')
  if (r.active >= r.maxActive) f.push('busy')
  if (!r.escrowReady) f.push('escrow')
  if (j.exclude?.has(r.address)) f.push('excluded')
  if (j.excludeOps?.has(r.operator)) f.push('operator')
  if (r.reputation < j.minRep) f.push('reputation')
  if (r.price > j.maxPrice) f.push('price')
  if (r.freeCpu < j.cpu) f.push('cpu')
  if (r.freeMem < j.mem) f.push('memory')
  if (j.gpus > 0) {
    if (r.freeGpus < j.gpus) f.push('gpu_count')
    else {
      const g = gpuMismatch(j.gpu, r.gpus, r.gpuModels)
      if (g) f.push(g)
    }
  }
  if (j.region !== undefined && r.region !== j.region) f.push('region')
  if (j.network && !r.network) f.push('network')
  if (!canBond(r, j)) f.push('bond')
  return f
}

/**
 * The checks of one open provider that its bucket and summaries cannot settle: capacity,
 * price, reputation, exclusions and bond. The index's searches run them per member.
 */
export function fitsMember(r: ProviderRecord, j: JobCtx): boolean {
  return (
    r.freeCpu >= j.cpu &&
    r.freeMem >= j.mem &&
    r.freeGpus >= j.gpus &&
    r.price <= j.maxPrice &&
    r.reputation >= j.minRep &&
    !j.exclude?.has(r.address) &&
    !j.excludeOps?.has(r.operator) &&
    canBond(r, j)
  )
}

/** Every hard constraint, as `failures(r, j).length === 0` but without building the list: for one provider at a time. */
export function fits(r: ProviderRecord, j: JobCtx): boolean {
  return (
    r.open &&
    fitsMember(r, j) &&
    (j.region === undefined || r.region === j.region) &&
    (!j.network || r.network) &&
    (j.gpus === 0 || gpuMismatch(j.gpu, r.gpus, r.gpuModels) === undefined)
  )
}

/** Whether the provider can post the job's bond at its own price (the bond grows with the price). */
export function canBond(r: ProviderRecord, j: JobCtx): boolean {
  return r.maxBond === Infinity || j.bondAt === undefined || j.bondAt(r.price) <= r.maxBond
}

/** Lower is better. The same function serves the index and the scan, so their choices compare exactly. */
export function scoreOf(r: ProviderRecord, j: JobCtx, wFit: number): number {
  const spare =
    (r.freeCpu - j.cpu) / r.cores + (r.freeMem - j.mem) / r.memTotal + (2 * (r.freeGpus - j.gpus)) / r.gpuDen
  return j.a * r.price + wFit * spare + r.ql
}

export function viewOf(r: ProviderRecord): ProviderView {
  return {
    address: r.address,
    operator: r.operator,
    region: r.region,
    pricePerHour: r.price,
    reputation: r.reputation,
    escrowReady: r.escrowReady,
    activeJobs: r.active,
    maxActiveJobs: r.maxActive,
    free: { cpu: r.freeCpu, memoryMb: r.freeMem, gpus: r.freeGpus },
  }
}
