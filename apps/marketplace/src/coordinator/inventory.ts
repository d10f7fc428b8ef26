import type { Address, CapacityAdvert } from '@kiln/protocol'
import type { ProviderCandidate } from '@kiln/scheduler'

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
  readonly #active = new Map<Address, Set<string>>()

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
    for (const [a, e] of this.#entries) if (e.expiresAt <= now) { this.#entries.delete(a); gone.push(a) }
    return gone
  }

  /** Marks a placement in progress in this process, until the database records it. */
  claim(address: Address, jobId: string): void {
    let set = this.#active.get(address)
    if (!set) this.#active.set(address, (set = new Set()))
    set.add(jobId)
  }

  release(address: Address, jobId: string): void {
    this.#active.get(address)?.delete(jobId)
  }

  candidates(now = Date.now()): ProviderCandidate[] {
    const out: ProviderCandidate[] = []
    for (const [address, e] of this.#entries) {
      if (e.expiresAt > now) out.push({ address, advert: e.advert, activeJobs: this.#active.get(address)?.size ?? 0 })
    }
    return out
  }

  list(now = Date.now()): { address: Address; advert: CapacityAdvert; lastSeen: number; expiresAt: number; activeJobs: number }[] {
    return [...this.#entries].filter(([, e]) => e.expiresAt > now)
      .map(([address, e]) => ({ address, advert: e.advert, lastSeen: e.lastSeen, expiresAt: e.expiresAt, activeJobs: this.#active.get(address)?.size ?? 0 }))
  }
}
