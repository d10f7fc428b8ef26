import { describe, expect, it } from 'vitest'
import { SLOT_MS, SlotClock } from '../src/clock.ts'

function clockAt(start: number, ttlMs = 2_000): { clock: SlotClock; advance: (ms: number) => void } {
  let now = start
  const clock = new SlotClock({ genesisMs: start, seed: new Uint8Array(32).fill(7), ttlMs, now: () => now })
  return { clock, advance: (ms) => (now += ms) }
}

describe('SlotClock', () => {
  it('moves one slot per SLOT_MS and issues a new blockhash each slot', () => {
    const { clock, advance } = clockAt(1_000_000)
    const a = clock.latest()
    advance(SLOT_MS)
    const b = clock.latest()
    expect(b.slot).toBe(a.slot + 1)
    expect(b.blockhash).not.toBe(a.blockhash)
    expect(b.lastValidBlockHeight).toBe(b.slot + clock.ttlSlots)
  })

  it('accepts a blockhash until its TTL has passed, then forgets it', () => {
    const { clock, advance } = clockAt(0, 2_000)
    const { blockhash, slot } = clock.latest()
    advance(1_600)
    expect(clock.issuedSlot(blockhash)).toBe(slot)
    advance(1_000)
    expect(clock.issuedSlot(blockhash)).toBeUndefined()
    expect(clock.issuedSlot('11111111111111111111111111111111')).toBeUndefined()
  })

  it('derives the same blockhashes from the same seed (a restart keeps recent ones valid)', () => {
    const seed = new Uint8Array(32).fill(1)
    const a = new SlotClock({ genesisMs: 0, seed, ttlMs: 60_000, now: () => 10_000 })
    const b = new SlotClock({ genesisMs: 0, seed, ttlMs: 60_000, now: () => 12_000 })
    const { blockhash, slot } = a.latest()
    expect(b.issuedSlot(blockhash)).toBe(slot)
    expect(a.genesisHash()).toBe(b.genesisHash())
    const other = new SlotClock({ genesisMs: 0, seed: new Uint8Array(32).fill(2), ttlMs: 60_000, now: () => 10_000 })
    expect(other.latest().blockhash).not.toBe(blockhash)
  })

  it('never goes back in slots when the wall clock does', () => {
    let now = 100_000
    const clock = new SlotClock({ genesisMs: 0, seed: new Uint8Array(32), ttlMs: 60_000, now: () => now })
    const s = clock.slot()
    now -= 50_000
    expect(clock.slot()).toBe(s)
  })
})
