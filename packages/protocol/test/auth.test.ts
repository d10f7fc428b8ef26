import { describe, expect, it } from 'vitest'
import {
  authorizationHeader,
  Identity,
  Kind,
  readerOf,
  requireReader,
  seal,
  sealReadToken,
  type KilnErrorName,
} from '../src/index.ts'

const market = Identity.generate().address
const kindOf = (fn: () => unknown): KilnErrorName | 'none' => {
  try {
    fn()
    return 'none'
  } catch (e) {
    return (e as { kind: KilnErrorName }).kind
  }
}

describe('read tokens', () => {
  it('name their signer, for the marketplace they were made for', () => {
    const me = Identity.generate()
    expect(readerOf(authorizationHeader(sealReadToken(me, market)), market)).toBe(me.address)
    expect(readerOf(undefined, market)).toBeNull()
  })

  it('are refused for another marketplace, once expired, when forged or malformed', () => {
    const me = Identity.generate()
    const now = Date.now()
    expect(kindOf(() => readerOf(authorizationHeader(sealReadToken(me, Identity.generate().address)), market))).toBe(
      'ENVELOPE_WRONG_SIGNER',
    )
    expect(
      kindOf(() => readerOf(authorizationHeader(sealReadToken(me, market, { now: now - 6 * 60_000 })), market, now)),
    ).toBe('ENVELOPE_EXPIRED')
    const t = sealReadToken(me, market)
    expect(kindOf(() => readerOf(authorizationHeader({ ...t, signer: Identity.generate().address }), market))).toBe(
      'ENVELOPE_BAD_SIGNATURE',
    )
    expect(kindOf(() => readerOf('Bearer abc', market))).toBe('AUTH_REQUIRED')
    expect(kindOf(() => readerOf('Kiln %%%', market))).toBe('ENVELOPE_MALFORMED')
  })

  it('cannot live longer than ten minutes, nor be another kind of envelope', () => {
    const me = Identity.generate()
    const long = seal(me, Kind.read, { audience: market }, { ttlMs: 60 * 60_000 })
    expect(kindOf(() => readerOf(authorizationHeader(long), market))).toBe('ENVELOPE_MALFORMED')
    // A signed action (here a cancel) is not a read token, whatever it says.
    const cancel = seal(me, Kind.cancel, { audience: market })
    expect(kindOf(() => readerOf(authorizationHeader(cancel), market))).toBe('ENVELOPE_WRONG_KIND')
    // sealReadToken itself never makes one that lives longer than the limit.
    const capped = sealReadToken(me, market, { ttlMs: 60 * 60_000 })
    expect(capped.expiresAt - capped.issuedAt).toBe(10 * 60_000)
  })

  it('an owner-only read that names no reader is refused with AUTH_REQUIRED, naming what it asked for', () => {
    const me = Identity.generate()
    expect(requireReader(me.address, 'outputs')).toBe(me.address)
    expect(kindOf(() => requireReader(null, 'outputs'))).toBe('AUTH_REQUIRED')
    expect(() => requireReader(null, 'outputs', { digest: 'd' })).toThrowError(/^outputs are their owner's only/)
  })
})
