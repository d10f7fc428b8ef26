import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { Identity, NonceCache, open, seal, isKilnError, type Envelope } from '../src/index.ts'

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
    expect(() => open(tampered, { kind, schema })).toThrowError(expect.objectContaining({ kind: 'ENVELOPE_BAD_SIGNATURE' }))
  })

  it('rejects an envelope that claims another signer', () => {
    const env = seal(Identity.generate(), kind, { n: 1 })
    const forged: Envelope = { ...env, signer: Identity.generate().address }
    expect(() => open(forged, { kind, schema })).toThrowError(expect.objectContaining({ code: 'KILN_1003' }))
  })

  it('rejects expired, replayed, oversized and wrong-kind envelopes', () => {
    const id = Identity.generate()
    const env = seal(id, kind, { n: 1 }, { ttlMs: 1000, now: 1_000 })
    expect(() => open(env, { kind, schema, now: 5_000 })).toThrowError(expect.objectContaining({ kind: 'ENVELOPE_EXPIRED' }))
    const nonces = new NonceCache()
    const fresh = seal(id, kind, { n: 1 })
    open(fresh, { kind, schema, nonces })
    expect(() => open(fresh, { kind, schema, nonces })).toThrowError(expect.objectContaining({ kind: 'ENVELOPE_REPLAYED' }))
    const big = seal(id, kind, { n: 1, pad: 'x'.repeat(70_000) })
    expect(() => open(JSON.stringify(big), { kind, schema })).toThrowError(expect.objectContaining({ kind: 'ENVELOPE_TOO_LARGE' }))
    expect(() => open(seal(id, 'other/1', { n: 1 }), { kind, schema })).toThrowError(expect.objectContaining({ kind: 'ENVELOPE_WRONG_KIND' }))
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

  it('never exposes the secret key through JSON or inspection', () => {
    const id = Identity.generate()
    expect(JSON.stringify({ id })).toBe(JSON.stringify({ id: { address: id.address } }))
    expect(String(Object.keys(id))).not.toMatch(/secret/i)
  })
})
