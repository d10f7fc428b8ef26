import { initTRPC, TRPCError } from '@trpc/server'
import { z } from 'zod'
import { isKilnError, KilnError, toFieldIssues, type Address } from '@kiln/protocol'
import { httpCode } from './errors.ts'
import type { Marketplace } from './marketplace.ts'

/** One request's context: the marketplace, and who the request is from. */
export interface RequestContext {
  market: Marketplace
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
      const kiln = new KilnError(
        'PAYLOAD_INVALID',
        `invalid request: ${first ? `${first.path || '(root)'}: ${first.message}` : 'invalid'}`,
        { issues },
      ).toJSON()
      return { ...shape, message: kiln.message, data: { ...data, kiln } }
    }
    if (error.code === 'INTERNAL_SERVER_ERROR')
      return { ...shape, message: INTERNAL.message, data: { ...data, kiln: INTERNAL } }
    return { ...shape, data: { ...data, kiln: undefined } }
  },
})

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
export const createCallerFactory = t.createCallerFactory
