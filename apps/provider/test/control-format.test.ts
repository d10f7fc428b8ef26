import { describe, expect, it } from 'vitest'
import { formatStatus } from '../src/cli/control.ts'
import { statusFixture } from './support/control.ts'

const USDC_MAINNET = 'EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v'

describe('kiln-provider status in words', () => {
  it('shows money as the marketplace does: exact, with its unit', () => {
    const text = formatStatus(statusFixture({ earnings: { jobs: 3, paid: 5, owed: 120_000 } }))
    expect(text).toContain('price     0.36 tUSDC/h (360000 base units)')
    expect(text).toContain('earnings  0.000005 tUSDC paid over 3 job(s), 0.12 tUSDC waiting for settlement')
  })

  it('names real USDC by its name', () => {
    expect(formatStatus(statusFixture({ mint: USDC_MAINNET as never }))).toContain('price     0.36 USDC/h')
  })
})
