import { z } from 'zod'
import { open, seal, type Envelope } from './envelope.ts'
import { KilnError, type KilnErrorContext } from './errors.ts'
import { isAddress, type Address, type Identity } from './identity.ts'
import { Kind } from './schemas.ts'

/**
 * A read token: a signed envelope saying "requests carrying this come from me, for this
 * marketplace, for a few minutes". It lets a client read its own jobs (details, logs, runs,
 * outputs) with one signature per few minutes instead of one per request. It is bound to one
 * marketplace (the audience is its arbiter address), so a token shown to one marketplace is
 * useless at another, and it grants reads only: every action still needs its own envelope.
 */
export const ReadToken = z.object({ audience: z.string().refine(isAddress, 'not an address') }).strict()

/** Long enough to follow a job without re-signing every request; short enough that a leaked token soon dies. */
export const READ_TOKEN_TTL_MS = 5 * 60_000
/** Tokens claiming to live longer are refused. */
export const MAX_READ_TOKEN_TTL_MS = 10 * 60_000
const SCHEME = 'Kiln '

export function sealReadToken(
  identity: Identity,
  audience: Address,
  opts: { ttlMs?: number; now?: number } = {},
): Envelope {
  return seal(
    identity,
    Kind.read,
    { audience },
    {
      ttlMs: Math.min(opts.ttlMs ?? READ_TOKEN_TTL_MS, MAX_READ_TOKEN_TTL_MS),
      ...(opts.now !== undefined ? { now: opts.now } : {}),
    },
  )
}

/** The HTTP `authorization` header value carrying a read token. */
export function authorizationHeader(token: Envelope): string {
  return SCHEME + Buffer.from(JSON.stringify(token)).toString('base64url')
}

/**
 * Who a request's `authorization` header says it is from: null when there is none; a
 * KilnError when there is one that is malformed, forged, expired, too long-lived or meant for
 * another marketplace.
 */
export function readerOf(header: string | undefined, audience: Address, now = Date.now()): Address | null {
  if (header === undefined || header === '') return null
  if (!header.startsWith(SCHEME)) {
    throw new KilnError(
      'AUTH_REQUIRED',
      `the authorization header must be "${SCHEME.trim()} <token>", a read token signed by your key`,
      { expected: 'Kiln <base64url read token>' },
    )
  }
  let raw: unknown
  try {
    raw = JSON.parse(Buffer.from(header.slice(SCHEME.length), 'base64url').toString('utf8'))
  } catch {
    throw new KilnError('ENVELOPE_MALFORMED', 'the read token is not base64url-encoded JSON')
  }
  const { payload, envelope } = open(raw, { kind: Kind.read, schema: ReadToken, now, maxBytes: 2048 })
  if (envelope.expiresAt - envelope.issuedAt > MAX_READ_TOKEN_TTL_MS) {
    throw new KilnError(
      'ENVELOPE_MALFORMED',
      `a read token may live at most ${MAX_READ_TOKEN_TTL_MS / 60_000} minutes`,
      { maxTtlMs: MAX_READ_TOKEN_TTL_MS },
    )
  }
  if (payload.audience !== audience) {
    throw new KilnError(
      'ENVELOPE_WRONG_SIGNER',
      `the read token is for marketplace ${payload.audience}, not this one (${audience})`,
      { audience: payload.audience, expected: audience },
    )
  }
  return envelope.signer
}

/** The reader an owner-only read must name: refused with AUTH_REQUIRED when it names none. */
export function requireReader(reader: Address | null, what: string, context: KilnErrorContext = {}): Address {
  if (reader !== null) return reader
  throw new KilnError(
    'AUTH_REQUIRED',
    `${what} are their owner's only: send a read token signed by the owner's key (the SDK and the kiln CLI do)`,
    context,
  )
}
