import type { TRPCError } from '@trpc/server'
import type { KilnError, KilnErrorName } from '@kiln/protocol'

const NOT_FOUND: KilnErrorName[] = ['JOB_NOT_FOUND', 'ARTIFACT_NOT_FOUND']
const FORBIDDEN: KilnErrorName[] = ['NOT_JOB_OWNER', 'ENVELOPE_BAD_SIGNATURE', 'ENVELOPE_WRONG_SIGNER']
const CONFLICT: KilnErrorName[] = ['JOB_WRONG_STATE', 'ENVELOPE_REPLAYED']

/** The tRPC (and so HTTP) meaning of a Kiln error. */
export function httpCode(e: KilnError): TRPCError['code'] {
  if (NOT_FOUND.includes(e.kind)) return 'NOT_FOUND'
  if (FORBIDDEN.includes(e.kind)) return 'FORBIDDEN'
  if (e.kind === 'AUTH_REQUIRED') return 'UNAUTHORIZED'
  if (CONFLICT.includes(e.kind)) return 'CONFLICT'
  if (e.kind === 'ENVELOPE_TOO_LARGE') return 'PAYLOAD_TOO_LARGE'
  if (e.kind === 'CHAIN_UNREACHABLE' || e.kind === 'INTERNAL_ERROR') return 'INTERNAL_SERVER_ERROR'
  return 'BAD_REQUEST'
}

const STATUS: Partial<Record<TRPCError['code'], number>> = {
  NOT_FOUND: 404,
  FORBIDDEN: 403,
  UNAUTHORIZED: 401,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  INTERNAL_SERVER_ERROR: 500,
}

/** The HTTP status of a Kiln error, for the routes beside the API (outputs). */
export function httpStatusOf(e: KilnError): number {
  return STATUS[httpCode(e)] ?? 400
}
