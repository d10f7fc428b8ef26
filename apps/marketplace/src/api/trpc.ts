import { initTRPC, TRPCError } from '@trpc/server'
import { z } from 'zod'
import { isKilnError, KilnError, toFieldIssues, type Address, type KilnErrorName, type TokenUnit } from '@kiln/protocol'
import type { CoordinatorContext } from '../coordinator/index.ts'

/** What the app builds once and every request shares. */
export interface ApiContext {
  coordinator: CoordinatorContext
  info: {
    arbiter: string; mint: string; rpcUrl: string; meshAddrs: string[]; version: string
    /** The mint's unit: every amount a client shows is named with it. */
    token: TokenUnit
    /** Defaults for jobs whose spec leaves them out, and the fee: what a quote needs. */
    verification: { p: number; bondRatio: number }; feeBps: number
    /** Providers below this reputation get no work. */
    minReputation: number
  }
}

/** One request's context: the shared parts, and who the request is from. */
export interface RequestContext extends ApiContext {
  /** The signer of the request's read token; null without one; throws a KilnError for a bad one. */
  reader: () => Address | null
}

const INTERNAL = new KilnError('INTERNAL_ERROR', 'the marketplace failed to answer; it logged the details').toJSON()

const t = initTRPC.context<RequestContext>().create({
  // Kiln errors cross the API whole (stable code, kind, context) so the SDK can rebuild them.
  // Nothing internal does: no stack, no file path, no SQL, no message of an unexpected error.
  errorFormatter({ shape, error }) {
    const { stack: _, ...data } = shape.data
    if (isKilnError(error.cause)) return { ...shape, data: { ...data, kiln: error.cause.toJSON() } }
    if (error.cause instanceof z.ZodError) {
      const issues = toFieldIssues(error.cause)
      const first = issues[0]
      const kiln = new KilnError('PAYLOAD_INVALID', `invalid request: ${first ? `${first.path || '(root)'}: ${first.message}` : 'invalid'}`, { issues }).toJSON()
      return { ...shape, message: kiln.message, data: { ...data, kiln } }
    }
    if (error.code === 'INTERNAL_SERVER_ERROR') return { ...shape, message: INTERNAL.message, data: { ...data, kiln: INTERNAL } }
    return { ...shape, data: { ...data, kiln: undefined } }
  },
})

const NOT_FOUND: KilnErrorName[] = ['JOB_NOT_FOUND', 'ARTIFACT_NOT_FOUND']
const FORBIDDEN: KilnErrorName[] = ['NOT_JOB_OWNER', 'ENVELOPE_BAD_SIGNATURE', 'ENVELOPE_WRONG_SIGNER']
const CONFLICT: KilnErrorName[] = ['JOB_WRONG_STATE', 'ENVELOPE_REPLAYED']

export function httpCode(e: KilnError): TRPCError['code'] {
  if (NOT_FOUND.includes(e.kind)) return 'NOT_FOUND'
  if (FORBIDDEN.includes(e.kind)) return 'FORBIDDEN'
  if (e.kind === 'AUTH_REQUIRED') return 'UNAUTHORIZED'
  if (CONFLICT.includes(e.kind)) return 'CONFLICT'
  if (e.kind === 'ENVELOPE_TOO_LARGE') return 'PAYLOAD_TOO_LARGE'
  if (e.kind === 'CHAIN_UNREACHABLE' || e.kind === 'INTERNAL_ERROR') return 'INTERNAL_SERVER_ERROR'
  return 'BAD_REQUEST'
}

const STATUS: Partial<Record<TRPCError['code'], number>> = { NOT_FOUND: 404, FORBIDDEN: 403, UNAUTHORIZED: 401, CONFLICT: 409, PAYLOAD_TOO_LARGE: 413, INTERNAL_SERVER_ERROR: 500 }

/** The HTTP status of a Kiln error, for the routes beside the API (outputs). */
export function httpStatusOf(e: KilnError): number {
  return STATUS[httpCode(e)] ?? 400
}

/** Every procedure maps Kiln errors to HTTP meanings, keeping the Kiln error as the cause. */
export const procedure = t.procedure.use(async ({ next }) => {
  const result = await next()
  if (!result.ok && isKilnError(result.error.cause)) {
    const cause = result.error.cause
    throw new TRPCError({ code: httpCode(cause), message: cause.message, cause })
  }
  return result
})

export const router = t.router
