import type { Db } from '@kiln/db'
import type { Address, CapacityAdvert } from '@kiln/protocol'
import {
  createMatchingEngine,
  type MatchingEngine,
  type PlaceJob,
  type PlaceOptions,
  type PlaceResult,
} from '@kiln/scheduler'
import type { ReputationEvent } from '@kiln/verifier'
import { foldOutcome, loadScores, type OutcomeMoney } from './reputation.ts'

interface Entry {
  advert: CapacityAdvert
  expiresAt: number
  lastSeen: number
}

/**
 * The live view of the network, built only from signed adverts: a provider is in it while
 * its latest advert has not expired, and leaves when the advert lapses or its peer goes away.
 */
export class Inventory {
  readonly #entries = new Map<Address, Entry>()

  upsert(address: Address, advert: CapacityAdvert, expiresAt: number, now = Date.now()): boolean {
    const prev = this.#entries.get(address)
    if (prev && prev.advert.seq > advert.seq) return false
    this.#entries.set(address, { advert, expiresAt, lastSeen: now })
    return true
  }

  remove(address: Address): void {
    this.#entries.delete(address)
  }

  get(address: Address): CapacityAdvert | undefined {
    const e = this.#entries.get(address)
    return e && e.expiresAt > Date.now() ? e.advert : undefined
  }

  /** Drops lapsed adverts; returns who left. */
  prune(now = Date.now()): Address[] {
    const gone: Address[] = []
    for (const [a, e] of this.#entries)
      if (e.expiresAt <= now) {
        this.#entries.delete(a)
        gone.push(a)
      }
    return gone
  }

  list(now = Date.now()): { address: Address; advert: CapacityAdvert; lastSeen: number; expiresAt: number }[] {
    return [...this.#entries]
      .filter(([, e]) => e.expiresAt > now)
      .map(([address, e]) => ({ address, advert: e.advert, lastSeen: e.lastSeen, expiresAt: e.expiresAt }))
  }
}

/** What a signed advert did to the directory. */
export type Heard = 'stale' | 'fresh' | 'freed'

/**
 * Everything the coordinator knows of the providers, with one owner: the live adverts, the
 * matching engine's records (fed from them, holding the capacity reserved by placements), and
 * each provider's reputation score. The engine and the scores change only through here, so
 * an advert, a lapse and a new score reach all three together.
 */
export class ProviderDirectory {
  readonly #adverts = new Inventory()
  readonly #engine: MatchingEngine
  readonly #scores = new Map<string, number>()
  readonly #db: Db

  constructor(opts: { db: Db; minReputation?: number; maxActiveJobs?: number }) {
    this.#db = opts.db
    this.#engine = createMatchingEngine({
      maxActiveJobs: opts.maxActiveJobs ?? 1,
      minReputation: opts.minReputation ?? 0,
    })
  }

  /** A signed advert arrived: kept (and matched against) unless an older one than we hold. */
  heard(address: Address, advert: CapacityAdvert, expiresAt: number, receivedAt = Date.now()): Heard {
    const before = this.#adverts.get(address)
    if (!this.#adverts.upsert(address, advert, expiresAt, receivedAt)) return 'stale'
    this.#engine.upsert({ address, advert, reputation: this.reputationOf(address) })
    return advert.available && !before?.available ? 'freed' : 'fresh'
  }

  /** The provider's peer went away; returns whether it had a live advert. */
  left(address: Address): boolean {
    const known = this.#adverts.get(address) !== undefined
    this.#adverts.remove(address)
    this.#engine.remove(address)
    return known
  }

  /** Drops lapsed adverts from the view and the engine; returns who left. */
  prune(now = Date.now()): Address[] {
    const gone = this.#adverts.prune(now)
    for (const a of gone) this.#engine.remove(a)
    return gone
  }

  get(address: Address): CapacityAdvert | undefined {
    return this.#adverts.get(address)
  }

  list(now = Date.now()): ReturnType<Inventory['list']> {
    return this.#adverts.list(now)
  }

  /** The provider's score (0..1); 0.5 for one we know nothing of. */
  reputationOf(address: string): number {
    return this.#scores.get(address) ?? 0.5
  }

  /** Every known score, to read. */
  get reputations(): ReadonlyMap<string, number> {
    return this.#scores
  }

  /** Scores of every provider the database knows, before any advert is matched. */
  async loadReputations(now = Date.now()): Promise<void> {
    for (const [address, score] of await loadScores(this.#db, now)) this.#scores.set(address, score)
  }

  /**
   * Folds one outcome of a provider's signed receipts (or of losing its run) into its decayed
   * reputation and earnings counters (reputation.ts), and gives the new score to the engine.
   */
  async recordOutcome(address: Address, event: ReputationEvent, money: OutcomeMoney = {}): Promise<number> {
    const score = await foldOutcome(this.#db, address, event, money)
    this.#scores.set(address, score)
    this.#engine.setReputation(address, score)
    return score
  }

  /** Chooses the best provider for the job and reserves its capacity in the engine, or says why none fits. */
  match(job: PlaceJob, opts?: PlaceOptions): PlaceResult {
    return this.#engine.place(job, opts)
  }

  /** Reserves capacity for a placement made elsewhere (another coordinator, or before a restart). */
  assign(job: PlaceJob, address: Address): boolean {
    return this.#engine.assign(job, address)
  }

  /** Gives a job's reserved capacity back. */
  release(jobId: string): void {
    this.#engine.release(jobId)
  }
}
