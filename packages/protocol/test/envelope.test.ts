import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import {
  Identity,
  jsonTextDepth,
  MAX_API_ENVELOPE_TTL_MS,
  NonceCache,
  open,
  seal,
  isKilnError,
  valueDepth,
  type Envelope,
} from '../src/index.ts'

const schema = z.object({ n: z.number() }).strict()
const kind = 'test/1'

describe('signed envelopes', () => {
  it('round-trips a sealed payload and names the signer', () => {
    const id = Identity.generate()
    const env = seal(id, kind, { n: 7 })
    const opened = open(JSON.stringify(env), { kind, schema })
    expect(opened.payload).toEqual({ n: 7 })
    expect(opened.signer).toBe(id.address)
  })

  it('rejects a payload changed after signing', () => {
    const env = seal(Identity.generate(), kind, { n: 1 })
    const tampered = { ...env, payload: { n: 2 } }
    expect(() => open(tampered, { kind, schema })).toThrowError(
      expect.objectContaining({ kind: 'ENVELOPE_BAD_SIGNATURE' }),
    )
  })

  it('rejects an envelope that claims another signer', () => {
    const env = seal(Identity.generate(), kind, { n: 1 })
    const forged: Envelope = { ...env, signer: Identity.generate().address }
    expect(() => open(forged, { kind, schema })).toThrowError(expect.objectContaining({ code: 'KILN_1003' }))
  })

  it('rejects expired, replayed, oversized and wrong-kind envelopes', () => {
    const id = Identity.generate()
    const env = seal(id, kind, { n: 1 }, { ttlMs: 1000, now: 1_000 })
    expect(() => open(env, { kind, schema, now: 5_000 })).toThrowError(
      expect.objectContaining({ kind: 'ENVELOPE_EXPIRED' }),
    )
    const nonces = new NonceCache()
    const fresh = seal(id, kind, { n: 1 })
    open(fresh, { kind, schema, nonces })
    expect(() => open(fresh, { kind, schema, nonces })).toThrowError(
      expect.objectContaining({ kind: 'ENVELOPE_REPLAYED' }),
    )
    const big = seal(id, kind, { n: 1, pad: 'x'.repeat(70_000) })
    expect(() => open(JSON.stringify(big), { kind, schema })).toThrowError(
      expect.objectContaining({ kind: 'ENVELOPE_TOO_LARGE' }),
    )
    expect(() => open(seal(id, 'other/1', { n: 1 }), { kind, schema })).toThrowError(
      expect.objectContaining({ kind: 'ENVELOPE_WRONG_KIND' }),
    )
  })

  it('checks the payload schema after the signature and names the field', () => {
    const env = seal(Identity.generate(), kind, { n: 'seven' })
    try {
      open(env, { kind, schema })
      expect.unreachable()
    } catch (e) {
      expect(isKilnError(e, 'PAYLOAD_INVALID')).toBe(true)
      if (isKilnError(e)) expect(e.context.issues?.[0]?.path).toBe('n')
    }
  })

  it('refuses an envelope nested deeper than any message, as text and as a value, before anything recursive walks it', () => {
    const deep = '['.repeat(100_000) + ']'.repeat(100_000)
    expect(() => open(`{"v":1,"payload":${deep}}`, { kind, schema, maxBytes: 1 << 20 })).toThrowError(
      expect.objectContaining({
        kind: 'ENVELOPE_MALFORMED',
        message: expect.stringMatching(/nests more than 32 levels/),
      }),
    )
    expect(() =>
      open({ v: 1, payload: JSON.parse(deep) as unknown }, { kind, schema, maxBytes: 1 << 20 }),
    ).toThrowError(expect.objectContaining({ kind: 'ENVELOPE_MALFORMED' }))
    // A sealed envelope with a legitimately nested payload still opens.
    const nested = seal(Identity.generate(), kind, { n: 1 })
    expect(open(JSON.stringify(nested), { kind, schema }).payload).toEqual({ n: 1 })
  })

  it('counts nesting the same in text and in values, ignoring brackets inside strings', () => {
    const value = { a: [{ b: '[[[{{{' }], c: 1 }
    expect(jsonTextDepth(JSON.stringify(value), 32)).toBe(3)
    expect(valueDepth(value, 32)).toBe(3)
    expect(jsonTextDepth('"\\\\"[[1]]', 32)).toBe(2)
    expect(jsonTextDepth('"\\"[[1]]', 32)).toBe(0)
    expect(valueDepth(7, 32)).toBe(0)
  })

  it('refuses an envelope that lives longer than its kind allows', () => {
    const id = Identity.generate()
    const long = seal(id, kind, { n: 1 }, { ttlMs: MAX_API_ENVELOPE_TTL_MS + 1000 })
    expect(() => open(long, { kind, schema, maxTtlMs: MAX_API_ENVELOPE_TTL_MS })).toThrowError(
      expect.objectContaining({
        kind: 'ENVELOPE_MALFORMED',
        context: expect.objectContaining({ maxTtlMs: MAX_API_ENVELOPE_TTL_MS }),
      }),
    )
    expect(open(seal(id, kind, { n: 1 }), { kind, schema, maxTtlMs: MAX_API_ENVELOPE_TTL_MS }).payload).toEqual({
      n: 1,
    })
  })

  it('never exposes the secret key through JSON or inspection', () => {
    const id = Identity.generate()
    expect(JSON.stringify({ id })).toBe(JSON.stringify({ id: { address: id.address } }))
    expect(String(Object.keys(id))).not.toMatch(/secret/i)
  })
})
