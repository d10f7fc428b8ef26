import { z } from 'zod'
import { isAddress, isKilnError, Kind, KilnError, open, sha256, type Address } from '@kiln/protocol'

/**
 * An upload token: a read token's envelope (Kind.read, the same `Kiln <token>` header) whose
 * payload also names the scope and the one digest it may write. The read token's own schema is
 * strict, so an upload token is never taken as a read token, and a plain read token (no scope,
 * no digest) never authorises a write. It lives a few minutes at most: the SDK seals one per
 * blob and again when it nears its end.
 */
export const UploadToken = z
  .object({
    audience: z.string().refine(isAddress, 'not an address'),
    scope: z.literal('blob:write'),
    sha256,
  })
  .strict()

/** A write token claiming to live longer than this is refused. */
export const MAX_UPLOAD_TOKEN_TTL_MS = 5 * 60_000
const SCHEME = 'Kiln '

/** Who may write `digest` by this request's `authorization` header; a KilnError for anything else. */
export function uploaderOf(header: string | undefined, audience: Address, digest: string, now = Date.now()): Address {
  if (header === undefined || !header.startsWith(SCHEME))
    throw new KilnError(
      'AUTH_REQUIRED',
      'authorization: an upload needs "Kiln <token>", an upload token for this digest signed by your key (the SDK and the kiln CLI send one)',
      { expected: 'Kiln <base64url upload token>' },
    )
  let raw: unknown
  try {
    raw = JSON.parse(Buffer.from(header.slice(SCHEME.length), 'base64url').toString('utf8'))
  } catch {
    throw new KilnError('ENVELOPE_MALFORMED', 'the upload token is not base64url-encoded JSON')
  }
  let opened
  try {
    opened = open(raw, { kind: Kind.read, schema: UploadToken, now, maxBytes: 2048, maxTtlMs: MAX_UPLOAD_TOKEN_TTL_MS })
  } catch (e) {
    // A read token (no scope, no digest) is well formed but grants no write.
    if (isKilnError(e, 'PAYLOAD_INVALID'))
      throw new KilnError(
        'AUTH_REQUIRED',
        'authorization: a read token does not upload; send an upload token (scope blob:write) for this digest',
        { expected: 'Kiln <base64url upload token>' },
      )
    throw e
  }
  const { payload, signer } = opened
  if (payload.audience !== audience)
    throw new KilnError(
      'ENVELOPE_WRONG_SIGNER',
      `the upload token is for marketplace ${payload.audience}, not this one (${audience})`,
      { audience: payload.audience, expected: audience },
    )
  if (payload.sha256 !== digest)
    throw new KilnError(
      'ENVELOPE_WRONG_SIGNER',
      `the upload token is for blob ${payload.sha256}, not ${digest}: seal one for the digest you upload`,
      { sha256: payload.sha256, expected: digest },
    )
  return signer
}
