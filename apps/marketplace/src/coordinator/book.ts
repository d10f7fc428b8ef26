import type { Address } from '@kiln/protocol'
import type { Job, PlaceJob, PlaceOptions, PlaceResult } from '@kiln/scheduler'
import type { ProviderDirectory } from './inventory.ts'

type Reserver = Pick<ProviderDirectory, 'match' | 'assign' | 'release'>

/**
 * The placement book: what this process knows of placing jobs, with one owner. It keeps the
 * job → provider reservations held in the matching engine (mirroring the placements in the
 * database), each queued job's place in the fair order, why a job is not placed yet, and how
 * long a run holds a provider. Passes go through `pass`, which never lets two overlap.
 */
export class PlacementBook {
  readonly #providers: Reserver
  readonly #reserved = new Map<string, string>()
  #positions = new Map<string, number>()
  readonly #waiting = new Map<string, string>()
  #avgRunMs = 60_000
  #running = false
  #again = false

  constructor(providers: Reserver) {
    this.#providers = providers
  }

  /**
   * Runs a placement pass now, or, when one is running, once more right after it: passes
   * never overlap in a process, and a pass asked for while one runs is not lost.
   */
  async pass(once: () => Promise<void>): Promise<void> {
    if (this.#running) {
      this.#again = true
      return
    }
    this.#running = true
    try {
      do {
        this.#again = false
        await once()
      } while (this.#again)
    } finally {
      this.#running = false
    }
  }

  /** Squares the engine's reservations with the placements in the database (every coordinator's). */
  mirror(active: readonly Pick<Job, 'id' | 'spec' | 'provider'>[]): void {
    const live = new Set(active.map((j) => j.id))
    for (const [jobId] of this.#reserved)
      if (!live.has(jobId)) {
        this.#providers.release(jobId)
        this.#reserved.delete(jobId)
      }
    for (const j of active)
      if (
        j.provider &&
        this.#reserved.get(j.id) !== j.provider &&
        this.#providers.assign({ id: j.id, spec: j.spec }, j.provider as Address)
      )
        this.#reserved.set(j.id, j.provider)
  }

  /** The best provider for a job, its capacity held until `placed` or `unplaced` says how placing it went. */
  match(job: PlaceJob, opts?: PlaceOptions): PlaceResult {
    return this.#providers.match(job, opts)
  }

  /** The job was placed on the provider `match` chose: its reservation stays. */
  placed(jobId: string, provider: string): void {
    this.#reserved.set(jobId, provider)
  }

  /** The job could not be placed after all (the provider was taken, escrow failed): its capacity goes back. */
  unplaced(jobId: string): void {
    this.#providers.release(jobId)
  }

  /** The queue's fair order, as of this pass: positions are 1-based. */
  ordered(jobIds: readonly string[]): void {
    this.#positions = new Map(jobIds.map((id, i) => [id, i + 1]))
  }

  /** A queued job's place in the fair order as of the last pass; null when it was not in it. */
  positionOf(jobId: string): number | null {
    return this.#positions.get(jobId) ?? null
  }

  /** Says why a job is not placed; returns whether that is news (another reason, or none before). */
  wait(jobId: string, why: string): boolean {
    if (this.#waiting.get(jobId) === why) return false
    this.#waiting.set(jobId, why)
    return true
  }

  /** The job is no longer waiting (placed, cancelled, unparked). */
  unwait(jobId: string): void {
    this.#waiting.delete(jobId)
  }

  /** Why a job is not placed, for the API to show; null when nothing holds it. */
  waitingReason(jobId: string): string | null {
    return this.#waiting.get(jobId) ?? null
  }

  /** A run held its provider this long: folded into the moving average the wait estimates use. */
  ran(ms: number): void {
    this.#avgRunMs = Math.round(this.#avgRunMs * 0.8 + ms * 0.2)
  }

  /** Moving average of how long a run holds a provider. */
  get avgRunMs(): number {
    return this.#avgRunMs
  }
}

/** The runs whose job or result stream this process holds right now, so that none is followed twice. */
export class FollowedRuns {
  readonly #ids = new Set<string>()

  /** Takes a run to follow; false when this process follows it already. */
  claim(jobId: string): boolean {
    if (this.#ids.has(jobId)) return false
    this.#ids.add(jobId)
    return true
  }

  release(jobId: string): void {
    this.#ids.delete(jobId)
  }

  has(jobId: string): boolean {
    return this.#ids.has(jobId)
  }
}

/**
 * The sealed secrets of locked runs, until their lease is delivered: a box only the placed
 * provider can open, kept by the coordinator that took the lock, in memory only. A coordinator
 * restarted between the lock and the run loses it, and the provider then refuses the lease
 * (SECRETS_UNSEALABLE), which refunds the client; a lease row of its own (issue 10) is where
 * it will be kept durably.
 */
export class SealedSecrets {
  readonly #byRun = new Map<string, unknown>()

  put(runId: string, envelope: unknown): void {
    // Bounded: a box is at most MAX_SECRETS_ENVELOPE_BYTES, and runs are held one per provider.
    if (this.#byRun.size >= 10_000) this.#byRun.delete(this.#byRun.keys().next().value as string)
    this.#byRun.set(runId, envelope)
  }

  get(runId: string): unknown {
    return this.#byRun.get(runId)
  }

  drop(runId: string): void {
    this.#byRun.delete(runId)
  }
}
