import type { Address, CapacityAdvert, JobSpec } from '@kiln/protocol'
/** The hard constraints a provider can fail for a job. */
export type EngineConstraint =
  | 'unavailable'
  | 'busy'
  | 'excluded'
  | 'price'
  | 'cpu'
  | 'memory'
  | 'gpu_count'
  | 'gpu_model'
  | 'gpu_vram'
  | 'region'
  | 'reputation'
  | 'escrow'
  | 'operator'
  | 'network'
  | 'bond'

/** A provider as adverts and the coordinator's own records describe it. */
export interface ProviderInput {
  address: Address
  advert: CapacityAdvert
  /** Who runs the machine; verification replicas avoid it. Defaults to the address. */
  operator?: string
  /** 0..1; unknown providers get `EngineInit.defaultReputation`. */
  reputation?: number
  /** Whether a vault for this provider can be set up (e.g. it has a token account). Defaults to true. */
  escrowReady?: boolean
  /** Jobs it runs at once; defaults to `EngineInit.maxActiveJobs`. */
  maxActiveJobs?: number
}

export interface ProviderStats {
  /** Share of its recent jobs that ended well, 0..1. */
  successRate?: number
  /** Round trip to it (mesh ping or lease acknowledgement). */
  latencyMs?: number
}

/**
 * Weights of the score (lower is better). Price dominates; fit keeps big
 * machines free for big jobs; the rest break near-ties in favour of reliable, idle, close providers.
 */
export interface ScoreWeights {
  /** Times price / the job's maximum price. */
  price: number
  /** Times the spare capacity left after placing (CPU + memory + 2 x GPU shares). */
  fit: number
  /** Times the busier of: our active jobs / its slots, its reported load. */
  load: number
  /** Times (1 - reputation). */
  reputation: number
  /** Times (1 - success rate). */
  successRate: number
  /** Times latency / latencyCapMs. */
  latency: number
}

export const DEFAULT_WEIGHTS: Readonly<ScoreWeights> = {
  price: 10,
  fit: 1,
  load: 0.5,
  reputation: 2,
  successRate: 2,
  latency: 0.5,
}

export interface EngineInit {
  weights?: Partial<ScoreWeights>
  /** Default for providers that do not say; the provider daemon runs one job at a time today. */
  maxActiveJobs?: number
  /** A floor every job gets; a job may ask for a higher one. */
  minReputation?: number
  defaultReputation?: number
  defaultSuccessRate?: number
  /** Latencies above this all score the same (they are all "far"). */
  latencyCapMs?: number
  /**
   * `indexed` (default) searches buckets and bounds; `scan` checks every provider and sorts by
   * score: the baseline the index is measured and tested against.
   */
  strategy?: 'indexed' | 'scan'
}

/** A job to place. `id` names its reservation, so that `release(id)` gives the capacity back. */
export interface PlaceJob {
  id: string
  spec: JobSpec
  /** A reputation floor above the engine's own. */
  minReputation?: number
  /**
   * The bond the provider posts for this job at a price per hour; it must not fall as the
   * price rises (the index bounds a band with its cheapest member). Absent: no bond.
   */
  bondAt?: (pricePerHour: number) => number
}

export interface PlaceOptions {
  exclude?: readonly Address[]
  excludeOperators?: readonly string[]
  /** The provider of the primary run: a verification replica goes to a different operator. */
  replicaOf?: Address
  /** When false a failed placement skips the per-constraint counts (a scan of every provider). */
  explain?: boolean
  /** Choose without reserving capacity. */
  dryRun?: boolean
}

/** A snapshot of a provider, safe to keep: the engine's own record keeps changing. */
export interface ProviderView {
  address: Address
  operator: string
  region: string
  pricePerHour: number
  reputation: number
  escrowReady: boolean
  activeJobs: number
  maxActiveJobs: number
  free: { cpu: number; memoryMb: number; gpus: number }
}

export interface EngineNearestOffer {
  provider: Address
  pricePerHour: number
  /** The constraints this provider fails; the fewer, the nearer. */
  fails: EngineConstraint[]
}

export type Unplaced = {
  ok: false
  total: number
  excluded: Partial<Record<EngineConstraint, number>>
  nearest: EngineNearestOffer[]
}
/** What the chosen provider holds of the job: its image, the names of inputs it holds, their bytes. */
export interface PlacementCached {
  image: boolean
  inputs: string[]
  /** Bytes of the held inputs (the image's size is not known, so it is not in here). */
  bytes: number
}

/** Why a placement chose its provider, for the job's event and the logs (see explainPlacement). */
export interface PlacementReason {
  /**
   * `cache`: it holds the most of the job's image and inputs among the fitting providers at most
   * `tolerance` dearer than the cheapest fitting one. `score`: the usual choice (price first,
   * then fit and reliability), because no holder was within the tolerance or the rule is off.
   */
  by: 'cache' | 'score'
  cached: PlacementCached
  /** The job's placement.cacheTolerance (0: the cache rule is off). */
  tolerance: number
  /** Fitting providers holding the job's image or an input (0 when the rule is off). */
  holders: number
  /** The cheapest fitting price, the base of the tolerance; known when holders > 0. */
  cheapestPerHour?: number
}

export type PlaceResult =
  { ok: true; provider: ProviderView; pricePerHour: number; score: number; reason: PlacementReason } | Unplaced
export type Placed = Extract<PlaceResult, { ok: true }>

export interface EngineStats {
  providers: number
  reservations: number
  placements: number
  /** Providers looked at one by one, over all placements: the index's work. */
  examined: number
}

export interface MatchingEngine {
  /** Adds a provider or applies its newer advert; its reservations carry over. */
  upsert(p: ProviderInput): void
  remove(address: Address): boolean
  setReputation(address: Address, reputation: number): void
  setStats(address: Address, stats: ProviderStats): void
  /** Load the provider reports (0..1), beyond the jobs this engine placed on it. */
  setLoad(address: Address, load: number): void
  setEscrowReady(address: Address, ready: boolean): void
  /**
   * Chooses the best provider for the job and reserves its capacity, or says why none fits.
   * Among the providers that fit, one that holds the job's image or inputs wins over the
   * best-scored one while its price is at most `spec.placement.cacheTolerance` above the
   * cheapest fitting price (the most held bytes first, then the score).
   */
  place(job: PlaceJob, opts?: PlaceOptions): PlaceResult
  /** Records a placement made earlier (after a restart), so that its capacity counts as used. */
  assign(job: PlaceJob, address: Address): boolean
  /** The job ended or left the provider: give its capacity back. */
  release(jobId: string): boolean
  /** Per-constraint exclusion counts and the nearest offers, from a scan of every provider. */
  explain(job: PlaceJob, opts?: PlaceOptions): Unplaced
  get(address: Address): ProviderView | undefined
  stats(): EngineStats
}
