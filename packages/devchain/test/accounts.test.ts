import { describe, expect, it } from 'vitest'
import { encodeAccount, tokenAmount } from '../src/accounts.ts'

describe('account encoding', () => {
  it('formats token amounts with their decimals', () => {
    expect(tokenAmount(1_500_000n, 6)).toEqual({ amount: '1500000', decimals: 6, uiAmount: 1.5, uiAmountString: '1.5' })
    expect(tokenAmount(5n, 6)).toMatchObject({ uiAmountString: '0.000005' })
    expect(tokenAmount(0n, 0)).toMatchObject({ uiAmountString: '0', uiAmount: 0 })
  })

  it('encodes data as base64 with an optional slice, base58 only when small', () => {
    const acc = {
      lamports: 10n,
      owner: '11111111111111111111111111111111',
      data: Uint8Array.from([1, 2, 3, 4]),
      executable: false,
    }
    const full = encodeAccount(acc, 'base64', undefined, () => undefined)
    expect(full).toMatchObject({ lamports: 10, data: ['AQIDBA==', 'base64'], space: 4 })
    expect(encodeAccount(acc, 'base64', { offset: 1, length: 2 }, () => undefined).data).toEqual(['AgM=', 'base64'])
    const big = { ...acc, data: new Uint8Array(200) }
    expect(() => encodeAccount(big, 'base58', undefined, () => undefined)).toThrow(/base 58/)
  })
})
