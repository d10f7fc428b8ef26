import { createCipheriv, hkdfSync, randomBytes } from 'node:crypto'
import { ed25519, x25519 } from '@noble/curves/ed25519.js'
import { describe, expect, it } from 'vitest'
import {
  canonicalJson,
  DEFAULT_SECRETS_TTL_MS,
  imageRegistry,
  Identity,
  Kind,
  MAX_SEALED_SECRET_BYTES,
  openSecrets,
  publicKeyFromAddress,
  seal,
  sealSecrets,
  type Envelope,
  type SecretBundle,
  type SecretsPayload,
} from '../src/index.ts'

const client = Identity.generate()
const provider = Identity.generate()
const other = Identity.generate()
const lease = { jobId: 'job_0123456789abcdef', escrowId: 'esc-1' }
const to = { provider: provider.address, ...lease }
const bundle: SecretBundle = { values: { API_TOKEN: 'tok-3f9a7c', DB_URL: 'postgres://u:p@h/db\nline2' } }
const expectFor = (over: Partial<Parameters<typeof openSecrets>[2]> = {}) => ({
  client: client.address,
  ...lease,
  names: ['API_TOKEN', 'DB_URL'],
  privateImage: false,
  ...over,
})

/** Re-signs a changed payload as the client (a valid envelope around a box that no longer fits it). */
function resign(env: Envelope<SecretsPayload>, change: Partial<SecretsPayload>): Envelope<SecretsPayload> {
  return seal(client, Kind.secrets, { ...env.payload, ...change }, { ttlMs: 60_000 })
}

/**
 * Seals any plaintext the way the protocol documents it, written out again here: an
 * independent check of the construction, and a way to put in a box what sealSecrets refuses.
 */
function sealRaw(plain: string): Envelope<SecretsPayload> {
  const recipient = ed25519.utils.toMontgomery(publicKeyFromAddress(provider.address))
  const esk = x25519.utils.randomSecretKey()
  const epk = x25519.getPublicKey(esk)
  const info = Buffer.from(
    `kiln/secrets/1\n${canonicalJson({ ...lease, provider: provider.address, client: client.address })}`,
  )
  const key = Buffer.from(
    hkdfSync('sha256', x25519.getSharedSecret(esk, recipient), Buffer.concat([epk, recipient]), info, 32),
  )
  const nonce = randomBytes(12)
  const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 })
  c.setAAD(info, { plaintextLength: Buffer.byteLength(plain) })
  const box = Buffer.concat([c.update(plain), c.final(), c.getAuthTag()])
  const payload = {
    ...to,
    epk: Buffer.from(epk).toString('base64'),
    nonce: nonce.toString('base64'),
    box: box.toString('base64'),
  }
  return seal(client, Kind.secrets, payload, { ttlMs: 60_000 })
}

const refusal = (pattern: RegExp) =>
  expect.objectContaining({ code: 'KILN_1009', message: expect.stringMatching(pattern) })

describe('sealed secrets', () => {
  it('round-trips: the provider opens what the client sealed to it for this lease', () => {
    const env = sealSecrets(client, to, bundle)
    expect(env.kind).toBe('kiln/secrets/1')
    expect(env.signer).toBe(client.address)
    expect(env.expiresAt - env.issuedAt).toBe(DEFAULT_SECRETS_TTL_MS)
    expect(env.payload).toMatchObject({ provider: provider.address, ...lease })
    // The marketplace sees only whom it is for: no value, no name.
    const wire = JSON.stringify(env)
    for (const s of ['tok-3f9a7c', 'postgres', 'API_TOKEN', 'DB_URL']) expect(wire).not.toContain(s)
    expect(openSecrets(provider, JSON.parse(wire), expectFor())).toEqual(bundle)
  })

  it('carries registry credentials for a private image, and drops them where the spec asks for none', () => {
    const registry = { server: 'localhost:5000', username: 'ci', password: 'pw-7781' }
    const env = sealSecrets(client, to, { values: {}, registry }, { ttlMs: 5000 })
    expect(env.expiresAt - env.issuedAt).toBe(5000)
    expect(openSecrets(provider, env, expectFor({ names: [], privateImage: true }))).toEqual({ values: {}, registry })
    expect(openSecrets(provider, env, expectFor({ names: [] }))).toEqual({ values: {} })
  })

  it('opens a box sealed as documented by another implementation', () => {
    expect(
      openSecrets(provider, sealRaw(JSON.stringify({ values: { A_B: 'xyzw' } })), expectFor({ names: ['A_B'] })),
    ).toEqual({
      values: { A_B: 'xyzw' },
    })
  })

  it('refuses an envelope not signed by the lease client', () => {
    const env = sealSecrets(other, to, bundle)
    expect(() => openSecrets(provider, env, expectFor())).toThrowError(refusal(/do not open: envelope signed by/))
  })

  it('refuses an envelope whose signature no longer verifies', () => {
    const env = sealSecrets(client, to, bundle)
    expect(() =>
      openSecrets(provider, { ...env, payload: { ...env.payload, escrowId: 'esc-2' } }, expectFor()),
    ).toThrowError(refusal(/signature does not verify/))
  })

  it('refuses secrets sealed to another provider, relabelled or not', () => {
    const env = sealSecrets(client, { ...to, provider: other.address }, bundle)
    expect(() => openSecrets(provider, env, expectFor())).toThrowError(refusal(/sealed to provider .* not to this one/))
    const relabelled = resign(env, { provider: provider.address })
    expect(() => openSecrets(provider, relabelled, expectFor())).toThrowError(refusal(/sealed box does not open/))
  })

  it('refuses secrets sealed for another job or escrow, relabelled or not', () => {
    const env = sealSecrets(client, to, bundle)
    expect(() => openSecrets(provider, env, expectFor({ jobId: 'job_9999999999aaaa' }))).toThrowError(
      refusal(/not for this lease/),
    )
    expect(() => openSecrets(provider, env, expectFor({ escrowId: 'esc-2' }))).toThrowError(
      refusal(/not for this lease/),
    )
    const moved = resign(env, { escrowId: 'esc-2' })
    expect(() => openSecrets(provider, moved, expectFor({ escrowId: 'esc-2' }))).toThrowError(
      refusal(/sealed box does not open/),
    )
  })

  it('refuses a tampered box, nonce or ephemeral key', () => {
    const env = sealSecrets(client, to, bundle)
    const box = Buffer.from(env.payload.box, 'base64')
    box[3] = box[3]! ^ 1
    expect(() => openSecrets(provider, resign(env, { box: box.toString('base64') }), expectFor())).toThrowError(
      refusal(/sealed box does not open: it was changed/),
    )
    const nonce = randomBytes(12).toString('base64')
    expect(() => openSecrets(provider, resign(env, { nonce }), expectFor())).toThrowError(refusal(/does not open/))
    const epk = Buffer.from(x25519.getPublicKey(x25519.utils.randomSecretKey())).toString('base64')
    expect(() => openSecrets(provider, resign(env, { epk }), expectFor())).toThrowError(refusal(/does not open/))
    expect(() =>
      openSecrets(provider, resign(env, { epk: Buffer.alloc(32).toString('base64') }), expectFor()),
    ).toThrowError(refusal(/./))
    expect(() => openSecrets(provider, resign(env, { nonce: 'AAAA' }), expectFor())).toThrowError(refusal(/malformed/))
  })

  it('refuses a bundle whose names are not exactly the spec names, naming them and no value', () => {
    const env = sealSecrets(client, to, { values: { API_TOKEN: 'tok-3f9a7c', EXTRA: 'extra-value' } })
    let error: unknown
    try {
      openSecrets(provider, env, expectFor())
    } catch (e) {
      error = e
    }
    expect(error).toMatchObject({ code: 'KILN_1009', context: { missing: ['DB_URL'], extra: ['EXTRA'] } })
    expect((error as Error).message).toMatch(/missing: DB_URL; not in the spec: EXTRA/)
    expect(JSON.stringify(error) + (error as Error).message).not.toMatch(/tok-3f9a7c|extra-value/)
    expect(() =>
      openSecrets(provider, sealSecrets(client, to, { values: { API_TOKEN: 'abcd' } }), expectFor()),
    ).toThrowError(refusal(/missing: DB_URL/))
  })

  it('refuses a name that is not an environment variable name, when sealing and when opening', () => {
    expect(() => sealSecrets(client, to, { values: { '1BAD': 'abcd' } })).toThrowError(
      refusal(/"1BAD" is not an environment/),
    )
    expect(() => sealSecrets(client, to, { values: { A: 'nul\u0000here' } })).toThrowError(refusal(/control character/))
    expect(() =>
      openSecrets(
        provider,
        sealRaw(JSON.stringify({ values: { 'BAD-NAME': 'abcd' } })),
        expectFor({ names: ['BAD-NAME'] }),
      ),
    ).toThrowError(refusal(/opened secrets: "BAD-NAME" is not an environment/))
    expect(() => openSecrets(provider, sealRaw('not json'), expectFor())).toThrowError(refusal(/not JSON/))
  })

  it('refuses a private image without registry credentials', () => {
    const env = sealSecrets(client, to, bundle)
    expect(() => openSecrets(provider, env, expectFor({ privateImage: true }))).toThrowError(
      refusal(/privateImage but .* no registry credentials/),
    )
  })

  it('refuses secrets too large to seal, and a box or envelope too large to open', () => {
    const big = { values: { BIG: 'x'.repeat(MAX_SEALED_SECRET_BYTES) } }
    expect(() => sealSecrets(client, to, big)).toThrowError(refusal(/the limit is/))
    const fits = { values: { BIG: 'x'.repeat(MAX_SEALED_SECRET_BYTES - 100) } }
    expect(openSecrets(provider, sealSecrets(client, to, fits), expectFor({ names: ['BIG'] }))).toEqual(fits)
    const env = sealSecrets(client, to, bundle)
    const oversized = Buffer.alloc(MAX_SEALED_SECRET_BYTES + 30).toString('base64')
    expect(() => openSecrets(provider, resign(env, { box: oversized }), expectFor())).toThrowError(
      refusal(/sealed box is \d+ bytes; the limit/),
    )
    const huge = { ...env, payload: { ...env.payload, box: 'A'.repeat(200_000) } }
    expect(() => openSecrets(provider, huge, expectFor())).toThrowError(refusal(/envelope is \d+ bytes/))
  })

  it('refuses expired sealed secrets', () => {
    const env = sealSecrets(client, to, bundle, { ttlMs: 1000 })
    expect(() => openSecrets(provider, env, expectFor({ now: env.expiresAt + 1 }))).toThrowError(refusal(/expired/))
  })
})

describe('imageRegistry', () => {
  it('names the host of an image reference, Docker Hub when there is none', () => {
    const cases: [ref: string, host: string][] = [
      ['ghcr.io/acme/train:1', 'ghcr.io'],
      ['localhost:5000/x', 'localhost:5000'],
      ['localhost/x:2', 'localhost'],
      ['Registry.Example.COM:443/a/b@sha256:00', 'registry.example.com:443'],
      ['acme/train:1', 'docker.io'],
      ['busybox', 'docker.io'],
      ['registry-1.docker.io/library/busybox', 'docker.io'],
    ]
    expect(cases.map(([ref]) => imageRegistry(ref))).toEqual(cases.map(([, host]) => host))
  })
})
