import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { Identity } from '@kiln/protocol'
import { payoutsFor, planSettlement, SETTLEMENT_OUTCOMES, type SettlementPlanInput } from '../src/index.ts'

const input = fc.record({
  lock: fc.integer({ min: 0, max: 10 ** 12 }),
  bond: fc.integer({ min: 0, max: 10 ** 12 }),
  pricePerHour: fc.integer({ min: 0, max: 10 ** 10 }),
  containerSeconds: fc.double({ min: 0, max: 30 * 86_400, noNaN: true }),
  outcome: fc.constantFrom(...SETTLEMENT_OUTCOMES),
  feeBps: fc.integer({ min: 0, max: 10_000 }),
})
const base: SettlementPlanInput = {
  lock: 1_000_000,
  bond: 500_000,
  pricePerHour: 3_600_000,
  containerSeconds: 100,
  outcome: 'verified',
  feeBps: 250,
}

describe('planSettlement', () => {
  it('always pays out exactly lock + bond, in non-negative integers', () => {
    fc.assert(
      fc.property(input, (i) => {
        const p = planSettlement(i)
        expect(p.provider + p.client + p.arbiter).toBe(i.lock + i.bond)
        for (const v of [p.provider, p.client, p.arbiter, p.work, p.fee]) {
          expect(Number.isSafeInteger(v)).toBe(true)
          expect(v).toBeGreaterThanOrEqual(0)
        }
      }),
      { numRuns: 2_000 },
    )
  })

  it('takes a fee only from paid work, at most its rate, and never pays the provider above the lock plus its bond', () => {
    fc.assert(
      fc.property(input, (i) => {
        const p = planSettlement(i)
        expect(p.fee).toBeLessThanOrEqual((p.work * i.feeBps) / 10_000)
        expect(p.fee).toBeLessThanOrEqual(p.work)
        expect(p.work).toBeLessThanOrEqual(i.lock)
        expect(p.provider).toBeLessThanOrEqual(i.lock + i.bond)
        if (p.work === 0) expect(p.arbiter).toBe(0)
      }),
      { numRuns: 2_000 },
    )
  })

  it('refunds in full on provider failure and timeout, returning the bond', () => {
    fc.assert(
      fc.property(input, fc.constantFrom('failed_provider' as const, 'timeout' as const), (i, outcome) => {
        const p = planSettlement({ ...i, outcome })
        expect(p).toMatchObject({
          client: i.lock,
          provider: i.bond,
          arbiter: 0,
          work: 0,
          bondReturned: i.bond,
          bondSlashed: 0,
        })
      }),
    )
  })

  it('slashes a caught provider: the client gets lock and bond, the provider and the marketplace nothing', () => {
    fc.assert(
      fc.property(input, (i) => {
        const p = planSettlement({ ...i, outcome: 'caught' })
        expect(p).toMatchObject({
          client: i.lock + i.bond,
          provider: 0,
          arbiter: 0,
          bondSlashed: i.bond,
          action: 'slash',
          cosigner: 'client',
        })
      }),
    )
  })

  it('pays seconds used, rounded up, pro rata, for verified, job-side failures and cancellations', () => {
    for (const outcome of ['verified', 'failed_client', 'cancelled'] as const) {
      // 100 s at 1.00/s is 100_000_000 > lock: capped at the lock.
      expect(planSettlement({ ...base, outcome })).toMatchObject({
        work: 100_000,
        fee: 2_500,
        provider: 597_500,
        client: 900_000,
        arbiter: 2_500,
        action: 'split',
        cosigner: 'provider',
      })
    }
    expect(planSettlement({ ...base, containerSeconds: 10_000 })).toMatchObject({
      work: 1_000_000,
      action: 'release',
      client: 0,
    })
    expect(planSettlement({ ...base, outcome: 'cancelled', containerSeconds: 0 })).toMatchObject({
      work: 0,
      action: 'refund',
      client: 1_000_000,
      provider: 500_000,
    })
    expect(planSettlement({ ...base, containerSeconds: 0.0001 }).work).toBe(1)
  })

  it('shows its amounts', () => {
    expect(planSettlement(base).lines).toEqual([
      'outcome: verified (split)',
      'paid for the work: 0.10 tUSDC for 100.0 s at 3.60 tUSDC/h, out of a lock of 1.00 tUSDC',
      "marketplace fee: 0.0025 tUSDC (2.50% of the work's pay)",
      'to the provider: 0.5975 tUSDC (0.0975 tUSDC for the work + its bond 0.50 tUSDC returned)',
      'to the client: 0.90 tUSDC (0.90 tUSDC of its lock back)',
    ])
    expect(
      planSettlement({ ...base, outcome: 'caught', token: { symbol: 'USDC', decimals: 6 } }).lines.slice(3),
    ).toEqual([
      'to the provider: 0.00 USDC (0.00 USDC for the work; its bond 0.50 USDC slashed to the client)',
      'to the client: 1.50 USDC (1.00 USDC of its lock back + the slashed bond 0.50 USDC)',
    ])
  })

  it('refuses bad input with a field name', () => {
    expect(() => planSettlement({ ...base, feeBps: 10_001 })).toThrowError(
      expect.objectContaining({ kind: 'PAYLOAD_INVALID', message: expect.stringContaining('feeBps') }),
    )
    expect(() => planSettlement({ ...base, lock: 1.5 })).toThrowError(
      expect.objectContaining({ kind: 'PAYLOAD_INVALID' }),
    )
    expect(() => planSettlement({ ...base, containerSeconds: -1 })).toThrowError(
      expect.objectContaining({ kind: 'PAYLOAD_INVALID' }),
    )
    expect(() => planSettlement({ ...base, outcome: 'lost' as never })).toThrowError(
      expect.objectContaining({ kind: 'PAYLOAD_INVALID' }),
    )
  })
})

describe('payoutsFor', () => {
  it('names each party and leaves out zero amounts', () => {
    const [client, provider, feeTo] = [
      Identity.generate().address,
      Identity.generate().address,
      Identity.generate().address,
    ]
    expect(payoutsFor(planSettlement({ ...base, outcome: 'caught' }), { client, provider, feeTo })).toEqual([
      { to: client, amount: 1_500_000 },
    ])
    expect(payoutsFor(planSettlement(base), { client, provider, feeTo })).toEqual([
      { to: provider, amount: 597_500 },
      { to: client, amount: 900_000 },
      { to: feeTo, amount: 2_500 },
    ])
  })
})
