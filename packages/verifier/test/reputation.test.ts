import { describe, expect, it } from 'vitest'
import {
  addEvent,
  DEFAULT_REPUTATION,
  emptyReputation,
  eventFromReceipt,
  reputation,
  type ReputationEvent,
} from '../src/index.ts'

const DAY = 86_400_000
const now = 1_000 * DAY
const many = (kind: ReputationEvent['kind'], n: number, at = now): ReputationEvent[] =>
  Array.from({ length: n }, () => ({ kind, at }))

describe('reputation', () => {
  it('starts a new provider at a neutral 0.5', () => {
    expect(reputation([], now)).toMatchObject({
      score: 0.5,
      counts: { completed: 0, verified: 0, caught: 0, timed_out: 0, failed: 0 },
    })
  })

  it('rises with completed and verified work and falls with failures and timeouts', () => {
    const good = reputation([...many('completed', 20), ...many('verified', 5)], now).score
    const flaky = reputation([...many('completed', 20), ...many('timed_out', 10)], now).score
    expect(good).toBeGreaterThan(0.9)
    expect(flaky).toBeLessThan(good)
    expect(reputation(many('failed', 5), now).score).toBeLessThan(0.5)
  })

  it('lets one catch outweigh a long good record', () => {
    const record = [...many('completed', 200), ...many('verified', 50)]
    const clean = reputation(record, now).score
    const caught = reputation([...record, { kind: 'caught', at: now }], now)
    expect(caught.score).toBeLessThan(0.15)
    expect(caught.score).toBeLessThan(reputation([], now).score)
    expect(caught.score).toBeLessThan(clean / 5)
    expect(caught.counts).toMatchObject({ completed: 200, verified: 50, caught: 1 })
  })

  it('decays: old evidence weighs half after one half-life, and an old catch is slowly forgiven', () => {
    const fresh = reputation([{ kind: 'completed', at: now }], now)
    const old = reputation([{ kind: 'completed', at: now - 30 * DAY }], now)
    expect(old.evidence.positive).toBeCloseTo(fresh.evidence.positive / 2, 12)
    const caughtAt = (age: number) =>
      reputation(
        [...many('completed', 50, now - age), { kind: 'caught', at: now - age }, ...many('completed', 50)],
        now,
      ).score
    expect(caughtAt(0)).toBeLessThan(caughtAt(120 * DAY))
    expect(caughtAt(120 * DAY)).toBeLessThan(caughtAt(480 * DAY))
    expect(caughtAt(480 * DAY)).toBeGreaterThan(0.5)
  })

  it('gives the same state whatever order the events arrive in', () => {
    const events: ReputationEvent[] = [
      { kind: 'completed', at: now - 10 * DAY },
      { kind: 'caught', at: now - 40 * DAY },
      { kind: 'verified', at: now - DAY },
      { kind: 'timed_out', at: now - 3 * DAY },
    ]
    const a = reputation(events, now)
    const b = reputation([...events].reverse(), now)
    expect(b.score).toBeCloseTo(a.score, 12)
    // Folding into a stored state, then asking later, is the same as asking about all events.
    const stored = events.reduce((s, e) => addEvent(s, e, DEFAULT_REPUTATION), emptyReputation())
    expect(stored.at).toBe(now - DAY)
  })

  it('maps a signed receipt to its event: only provider-side failures count against it', () => {
    expect(eventFromReceipt({ status: 'succeeded', exitCode: 0, endedAt: 5 })).toEqual({ kind: 'completed', at: 5 })
    expect(
      eventFromReceipt({ status: 'failed', exitCode: 3, endedAt: 5, error: { code: 'KILN_5002', message: 'exit 3' } })
        .kind,
    ).toBe('completed')
    expect(
      eventFromReceipt({
        status: 'failed',
        exitCode: null,
        endedAt: 5,
        error: { code: 'KILN_5003', message: 'timeout' },
      }).kind,
    ).toBe('completed')
    expect(
      eventFromReceipt({
        status: 'failed',
        exitCode: null,
        endedAt: 5,
        error: { code: 'KILN_5001', message: 'no image' },
      }).kind,
    ).toBe('failed')
  })
})
