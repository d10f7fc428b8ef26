import type { Address, CapacityAdvert } from '@kiln/protocol'

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
