import type { z } from 'zod'
import { claimNonce } from '@kiln/db'
import { KilnError, MAX_API_ENVELOPE_TTL_MS, open, type Opened } from '@kiln/protocol'
import type { CoordinatorContext } from './types.ts'

/**
 * Opens a client's signed API request (submit, lock, cancel, co-sign, runs). Its nonce is kept
 * in the database until the envelope expires, not in this process's memory: a request
 * captured and sent again after a restart, or to another coordinator of the marketplace, is
 * refused as a replay. Such requests may live two minutes at most, which bounds what is kept.
 */
export async function openSigned<S extends z.ZodType>(
  ctx: Pick<CoordinatorContext, 'db'>,
  raw: unknown,
  kind: string,
  schema: S,
  opts: { maxBytes?: number } = {},
): Promise<Opened<z.output<S>>> {
  const opened = open(raw, { kind, schema, maxTtlMs: MAX_API_ENVELOPE_TTL_MS, ...opts })
  const { signer, nonce, expiresAt } = opened.envelope
  if (!(await claimNonce(ctx.db, signer, nonce, expiresAt))) {
    throw new KilnError(
      'ENVELOPE_REPLAYED',
      `this ${kind} request was already received (nonce ${nonce}); sign a new one`,
      { signer, nonce },
    )
  }
  return opened
}
