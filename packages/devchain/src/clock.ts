import { createHash } from 'node:crypto'
import bs58 from 'bs58'

/** A slot lasts as long as on a real cluster, so web3.js's polling cadence fits. */
export const SLOT_MS = 400

/**
 * Slots and blockhashes as pure functions of wall-clock time since genesis: they keep
 * moving while nobody sends transactions, expire by time (not by transaction count), carry
 * across a restart without being stored, and need no timer. Block height equals the slot.
 */
export class SlotClock {
  readonly genesisMs: number
  readonly ttlSlots: number
  readonly #seed: Uint8Array
  readonly #now: () => number
  /** Issued blockhashes still inside the validity window, to their slot. */
  readonly #recent = new Map<string, number>()
  #coveredUpTo = -1
  #floor: number

  constructor(init: { genesisMs: number; seed: Uint8Array; ttlMs: number; lastSlot?: number; now?: () => number }) {
    this.genesisMs = init.genesisMs
    this.#seed = init.seed
    this.ttlSlots = Math.max(1, Math.ceil(init.ttlMs / SLOT_MS))
    this.#now = init.now ?? Date.now
    // A wall clock that steps back must not make the chain go back in slots.
    this.#floor = init.lastSlot ?? 0
  }

  slot(): number {
    const s = Math.floor((this.#now() - this.genesisMs) / SLOT_MS)
    if (s > this.#floor) this.#floor = s
    return this.#floor
  }

  blockhashAt(slot: number): string {
    const n = Buffer.alloc(8)
    n.writeBigUInt64LE(BigInt(slot))
    return bs58.encode(createHash('sha256').update(this.#seed).update('blockhash').update(n).digest())
  }

  genesisHash(): string {
    return bs58.encode(createHash('sha256').update(this.#seed).update('genesis').digest())
  }

  latest(): { blockhash: string; slot: number; lastValidBlockHeight: number } {
    const slot = this.slot()
    this.#refresh(slot)
    return { blockhash: this.blockhashAt(slot), slot, lastValidBlockHeight: slot + this.ttlSlots }
  }

  /** The slot a blockhash was issued at, or undefined when it is unknown or has expired. */
  issuedSlot(blockhash: string): number | undefined {
    const now = this.slot()
    this.#refresh(now)
    const s = this.#recent.get(blockhash)
    return s !== undefined && now - s <= this.ttlSlots ? s : undefined
  }

  #refresh(now: number): void {
    const from = Math.max(this.#coveredUpTo + 1, now - this.ttlSlots, 0)
    for (let s = from; s <= now; s++) this.#recent.set(this.blockhashAt(s), s)
    if (now > this.#coveredUpTo) this.#coveredUpTo = now
    for (const [hash, s] of this.#recent) {
      if (now - s > this.ttlSlots) this.#recent.delete(hash)
    }
  }
}
