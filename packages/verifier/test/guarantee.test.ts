import { describe, expect, it } from 'vitest'
import { guarantee } from '../src/index.ts'

describe('guarantee', () => {
  it('quotes the chance to catch k cheats: p = 0.1, k = 20 is 88%', () => {
    const g = guarantee({ p: 0.1, bond: 1_000_000, pricePerJob: 100_000, k: 20 })
    expect(g.detectK).toBeCloseTo(1 - 0.9 ** 20, 12)
    expect(g.quoteLines.join('\n')).toContain('87.8%')
  })

  it('names the unit, and says "at most" where the amounts are the client\'s ceiling', () => {
    const lines = guarantee({
      p: 0.1,
      bond: 333_340,
      pricePerJob: 33_334,
      token: { symbol: 'USDC', decimals: 6 },
      ceiling: true,
    }).quoteLines
    expect(lines[2]).toBe(
      'provider bond: at most 0.33334 USDC; expected loss per cheat 0.033334 USDC vs expected gain 0.030001 USDC: cheating does not pay',
    )
    expect(lines[3]).toMatch(/^expected cost: at most 0\.033334 USDC x 1\.100 = 0\.036667 USDC/)
    expect(guarantee({ p: 0.1, bond: 120_000, pricePerJob: 12_000 }).quoteLines[2]).toMatch(
      /^provider bond: 0\.12 tUSDC;/,
    )
  })

  it('says cheating does not pay when p*S > (1-p)*G, and what bond would deter it otherwise', () => {
    const deterred = guarantee({ p: 0.1, bond: 1_000_000, pricePerJob: 100_000 })
    expect(deterred).toMatchObject({ expectedPenalty: 100_000, expectedGain: 90_000, cheatingPays: false })
    expect(deterred.quoteLines[2]).toContain('cheating does not pay')
    const weak = guarantee({ p: 0.1, bond: 500_000, pricePerJob: 100_000 })
    expect(weak.cheatingPays).toBe(true)
    expect(weak.minDeterringBond).toBe(900_001)
    expect(guarantee({ p: 0.1, bond: weak.minDeterringBond, pricePerJob: 100_000 }).cheatingPays).toBe(false)
    expect(guarantee({ p: 0.1, bond: 900_000, pricePerJob: 100_000 }).cheatingPays).toBe(true)
  })

  it('uses a smaller saving when the cheater still does part of the work', () => {
    expect(guarantee({ p: 0.05, bond: 100_000, pricePerJob: 100_000, saving: 5_000 }).cheatingPays).toBe(false)
  })

  it('prices the expected compute: 1 + p, plus the tie-break share', () => {
    expect(guarantee({ p: 0.1, bond: 0, pricePerJob: 1_000_000 })).toMatchObject({
      expectedCostFactor: 1.1,
      expectedCost: 1_100_000,
    })
    expect(guarantee({ p: 0.2, bond: 0, pricePerJob: 1_000, tiebreakRate: 0.5 }).expectedCostFactor).toBeCloseTo(
      1.3,
      12,
    )
  })

  it('without spot-checks, detects nothing and no bond deters', () => {
    const g = guarantee({ p: 0, bond: 10 ** 9, pricePerJob: 1_000 })
    expect(g).toMatchObject({ detectK: 0, cheatingPays: true, minDeterringBond: Infinity })
  })

  it('refuses nonsense', () => {
    expect(() => guarantee({ p: 2, bond: 0, pricePerJob: 1 })).toThrowError(
      expect.objectContaining({ kind: 'PAYLOAD_INVALID' }),
    )
    expect(() => guarantee({ p: 0.1, bond: -1, pricePerJob: 1 })).toThrowError(
      expect.objectContaining({ kind: 'PAYLOAD_INVALID' }),
    )
    expect(() => guarantee({ p: 0.1, bond: 1, pricePerJob: 1, k: 0 })).toThrowError(
      expect.objectContaining({ kind: 'PAYLOAD_INVALID' }),
    )
  })
})
