import { describe, expect, it } from 'vitest'
import { formatAmount, formatRate, moneyFormat, TEST_TOKEN, tokenUnitFor } from '../src/index.ts'

describe('money', () => {
  it('shows base units as the coin, exact to the base unit, at least two decimals', () => {
    expect(formatAmount(1_000_000, TEST_TOKEN)).toBe('1.00 tUSDC')
    expect(formatAmount(1_500_000, TEST_TOKEN)).toBe('1.50 tUSDC')
    expect(formatAmount(12_000, TEST_TOKEN)).toBe('0.012 tUSDC')
    expect(formatAmount(33_334, TEST_TOKEN)).toBe('0.033334 tUSDC')
    expect(formatAmount(0, TEST_TOKEN)).toBe('0.00 tUSDC')
  })

  it('never shows a small job cost as nothing', () => {
    expect(formatAmount(5, TEST_TOKEN)).toBe('0.000005 tUSDC')
    expect(formatAmount(11_995, TEST_TOKEN)).toBe('0.011995 tUSDC')
  })

  it('groups thousands, takes bigints and rounds a fraction of a base unit', () => {
    expect(formatAmount(1_234_567_890_000, TEST_TOKEN)).toBe('1,234,567.89 tUSDC')
    expect(formatAmount(2n ** 60n, TEST_TOKEN)).toBe('1,152,921,504,606.846976 tUSDC')
    expect(formatAmount(3333.6, TEST_TOKEN)).toBe('0.003334 tUSDC')
    expect(formatAmount(-250_000, TEST_TOKEN)).toBe('-0.25 tUSDC')
  })

  it('prices per hour, and a dash for an amount not there yet', () => {
    expect(formatRate(360_000, TEST_TOKEN)).toBe('0.36 tUSDC/h')
    const m = moneyFormat(TEST_TOKEN)
    expect(m.amount(null)).toBe('-')
    expect(m.rate(undefined)).toBe('-')
    expect(m.amount(120_000)).toBe('0.12 tUSDC')
  })

  it("names Circle's USDC mints USDC and any other mint a test coin, unless told", () => {
    expect(tokenUnitFor('EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v').symbol).toBe('USDC')
    expect(tokenUnitFor('4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU').symbol).toBe('USDC')
    expect(tokenUnitFor('So11111111111111111111111111111111111111112').symbol).toBe('tUSDC')
    expect(tokenUnitFor('So11111111111111111111111111111111111111112', 'EURC').symbol).toBe('EURC')
  })
})
