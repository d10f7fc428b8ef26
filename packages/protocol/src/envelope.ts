import { z } from 'zod'
import { canonicalJson, randomHex } from './bytes.ts'
import { KilnError } from './errors.ts'
import { isAddress, verifySignature, type Address, type Identity } from './identity.ts'
import { jsonTextDepth, MAX_JSON_DEPTH, valueDepth } from './json-depth.ts'
import { plainText } from './text.ts'
import { parseOrThrow } from './validate.ts'
import bs58 from 'bs58'

/**
 * A signed envelope: the unit every message that matters travels in. The signature covers
 * a domain tag and the canonical JSON of everything but the signature itself.
 */
export interface Envelope<T = unknown> {
  v: 1
  kind: string
  payload: T
  signer: Address
  issuedAt: number
  expiresAt: number
  nonce: string
  sig: string
}

const DOMAIN = 'kiln-envelope-v1\n'
export const DEFAULT_MAX_ENVELOPE_BYTES = 64 * 1024
/** How far a signer's clock may run ahead of ours. */
export const MAX_CLOCK_SKEW_MS = 30_000
/** No envelope may claim to live longer than this; bounds the replay cache. */
export const MAX_ENVELOPE_TTL_MS = 24 * 3600_000
/**
 * API actions (submit, lock, cancel, co-sign, runs) are sealed just before they are sent (the
 * SDK gives them 60 s): two minutes is all they need, and it bounds how long a marketplace
 * keeps their nonces to refuse replays.
 */
export const MAX_API_ENVELOPE_TTL_MS = 120_000

const envelopeShape = z
  .object({
    v: z.literal(1),
    kind: plainText().min(1).max(64),
    payload: z.unknown(),
    signer: z.string().refine(isAddress, 'not an address'),
    issuedAt: z.number().int().nonnegative(),
    expiresAt: z.number().int().nonnegative(),
    nonce: z.string().regex(/^[0-9a-f]{16,64}$/),
    sig: z.string().min(64).max(100),
  })
  .strict()

function signingBytes(e: Omit<Envelope, 'sig'>): Uint8Array {
  const { v, kind, payload, signer, issuedAt, expiresAt, nonce } = e
  return new TextEncoder().encode(DOMAIN + canonicalJson({ v, kind, payload, signer, issuedAt, expiresAt, nonce }))
}

export interface SealOptions {
  ttlMs?: number
  now?: number
}

export function seal<T>(identity: Identity, kind: string, payload: T, opts: SealOptions = {}): Envelope<T> {
  const issuedAt = opts.now ?? Date.now()
  const ttl = Math.min(opts.ttlMs ?? 60_000, MAX_ENVELOPE_TTL_MS)
  const unsigned = {
    v: 1 as const,
    kind,
    payload,
    signer: identity.address,
    issuedAt,
    expiresAt: issuedAt + ttl,
    nonce: randomHex(16),
  }
  const sig = bs58.encode(identity.sign(signingBytes(unsigned)))
  return { ...unsigned, sig }
}

/** Remembers nonces until their envelope expires, so a replay inside the lifetime is caught. */
export class NonceCache {
  readonly #seen = new Map<string, number>()
  readonly #max: number

  constructor(max = 200_000) {
    this.#max = max
  }

  /** Returns false when (signer, nonce) was already seen. */
  remember(signer: string, nonce: string, expiresAt: number, now = Date.now()): boolean {
    const key = `${signer}:${nonce}`
    const prev = this.#seen.get(key)
    if (prev !== undefined && prev > now) return false
    if (this.#seen.size >= this.#max) this.prune(now)
    if (this.#seen.size >= this.#max) {
      // Still full of live nonces: drop the oldest insertion rather than grow without bound.
      const oldest = this.#seen.keys().next().value
      if (oldest !== undefined) this.#seen.delete(oldest)
    }
    this.#seen.set(key, expiresAt)
    return true
  }

  prune(now = Date.now()): void {
    for (const [k, exp] of this.#seen) if (exp <= now) this.#seen.delete(k)
  }

  get size(): number {
    return this.#seen.size
  }
}

export interface OpenOptions<S extends z.ZodType> {
  kind: string
  schema: S
  now?: number
  maxBytes?: number
  /** Replay protection; omit only for messages that are idempotent by design. */
  nonces?: NonceCache
  /** When set, the envelope must be signed by this address. */
  signer?: Address | readonly Address[]
  /** The longest lifetime (expiresAt - issuedAt) accepted for this kind; MAX_ENVELOPE_TTL_MS at most. */
  maxTtlMs?: number
}

export interface Opened<T> {
  payload: T
  signer: Address
  envelope: Envelope<T>
}

/**
 * Checks an envelope from the network: size, shape, kind, signature, time window, replay,
 * signer and payload schema, in that order (cheap checks first). Throws KilnError.
 */
export function open<S extends z.ZodType>(
  input: Uint8Array | string | unknown,
  opts: OpenOptions<S>,
): Opened<z.output<S>> {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_ENVELOPE_BYTES
  let raw: unknown = input
  if (typeof input === 'string' || input instanceof Uint8Array) {
    const size = typeof input === 'string' ? Buffer.byteLength(input) : input.byteLength
    if (size > maxBytes)
      throw new KilnError('ENVELOPE_TOO_LARGE', `envelope is ${size} bytes; the limit is ${maxBytes}`, {
        size,
        maxBytes,
      })
    const text = typeof input === 'string' ? input : new TextDecoder().decode(input)
    assertShallow(jsonTextDepth(text, MAX_JSON_DEPTH))
    try {
      raw = JSON.parse(text)
    } catch {
      throw new KilnError('ENVELOPE_MALFORMED', 'envelope is not JSON')
    }
  } else {
    // Before anything recursive (stringify, the signature's canonical JSON) walks it.
    assertShallow(valueDepth(input, MAX_JSON_DEPTH))
    const size = Buffer.byteLength(JSON.stringify(input) ?? '')
    if (size > maxBytes)
      throw new KilnError('ENVELOPE_TOO_LARGE', `envelope is ${size} bytes; the limit is ${maxBytes}`, {
        size,
        maxBytes,
      })
  }
  const parsed = envelopeShape.safeParse(raw)
  if (!parsed.success)
    throw new KilnError('ENVELOPE_MALFORMED', 'envelope does not have the envelope shape', {
      issues: parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
    })
  const env = parsed.data as Envelope
  if (env.kind !== opts.kind)
    throw new KilnError('ENVELOPE_WRONG_KIND', `expected a ${opts.kind} envelope, got ${env.kind}`, {
      expected: opts.kind,
      got: env.kind,
    })
  let sig: Uint8Array
  try {
    sig = bs58.decode(env.sig)
  } catch {
    throw new KilnError('ENVELOPE_BAD_SIGNATURE', 'signature is not base58')
  }
  if (!verifySignature(env.signer, signingBytes(env), sig)) {
    throw new KilnError('ENVELOPE_BAD_SIGNATURE', `signature does not verify for signer ${env.signer}`, {
      signer: env.signer,
      kind: env.kind,
    })
  }
  const now = opts.now ?? Date.now()
  if (env.expiresAt <= now)
    throw new KilnError('ENVELOPE_EXPIRED', `envelope expired ${now - env.expiresAt} ms ago`, {
      expiresAt: env.expiresAt,
      now,
    })
  if (env.issuedAt > now + MAX_CLOCK_SKEW_MS)
    throw new KilnError('ENVELOPE_NOT_YET_VALID', 'envelope is issued in the future', { issuedAt: env.issuedAt, now })
  const maxTtlMs = Math.min(opts.maxTtlMs ?? MAX_ENVELOPE_TTL_MS, MAX_ENVELOPE_TTL_MS)
  if (env.expiresAt - env.issuedAt > maxTtlMs) {
    throw new KilnError(
      'ENVELOPE_MALFORMED',
      `a ${env.kind} envelope may live at most ${maxTtlMs / 1000} s; this one lives ${Math.round((env.expiresAt - env.issuedAt) / 1000)} s (seal it with a shorter ttlMs)`,
      { maxTtlMs, ttlMs: env.expiresAt - env.issuedAt },
    )
  }
  if (opts.signer !== undefined) {
    const allowed = typeof opts.signer === 'string' ? [opts.signer] : opts.signer
    if (!allowed.includes(env.signer))
      throw new KilnError(
        'ENVELOPE_WRONG_SIGNER',
        `envelope signed by ${env.signer}, expected ${allowed.join(' or ')}`,
        { signer: env.signer },
      )
  }
  // Replay is checked after the signature so that forged envelopes cannot fill the cache.
  if (opts.nonces && !opts.nonces.remember(env.signer, env.nonce, env.expiresAt, now)) {
    throw new KilnError('ENVELOPE_REPLAYED', 'envelope nonce was already used', {
      signer: env.signer,
      nonce: env.nonce,
    })
  }
  const payload = parseOrThrow(opts.schema, env.payload, `${env.kind} payload`)
  return { payload, signer: env.signer, envelope: { ...env, payload } }
}

function assertShallow(depth: number): void {
  if (depth > MAX_JSON_DEPTH)
    throw new KilnError(
      'ENVELOPE_MALFORMED',
      `envelope nests more than ${MAX_JSON_DEPTH} levels deep; no Kiln message does`,
      { maxDepth: MAX_JSON_DEPTH },
    )
}

/** Verifies only the signature of an envelope stored earlier (no expiry or replay check). */
export function verifyEnvelopeSignature(env: Envelope): boolean {
  try {
    return verifySignature(env.signer, signingBytes(env), bs58.decode(env.sig))
  } catch {
    return false
  }
}
