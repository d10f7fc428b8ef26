import { initTRPC, TRPCError } from '@trpc/server'
import { isKilnError, type KilnError, type KilnErrorName } from '@kiln/protocol'
import type { CoordinatorContext } from '../coordinator/index.ts'

export interface ApiContext {
  coordinator: CoordinatorContext
  info: {
    arbiter: string; mint: string; rpcUrl: string; meshAddrs: string[]; version: string
    /** Defaults for jobs whose spec leaves them out, and the fee: what a quote needs. */
    verification: { p: number; bondRatio: number }; feeBps: number
    /** Providers below this reputation get no work. */
    minReputation: number
  }
}

const t = initTRPC.context<ApiContext>().create({
  // Kiln errors cross the API whole (stable code, kind, context) so the SDK can rebuild them.
  errorFormatter({ shape, error }) {
    const kiln = isKilnError(error.cause) ? error.cause.toJSON() : undefined
    return { ...shape, data: { ...shape.data, kiln } }
  },
})

const NOT_FOUND: KilnErrorName[] = ['JOB_NOT_FOUND', 'ARTIFACT_NOT_FOUND']
const FORBIDDEN: KilnErrorName[] = ['NOT_JOB_OWNER', 'ENVELOPE_BAD_SIGNATURE', 'ENVELOPE_WRONG_SIGNER']
const CONFLICT: KilnErrorName[] = ['JOB_WRONG_STATE', 'ENVELOPE_REPLAYED']

function httpCode(e: KilnError): TRPCError['code'] {
  if (NOT_FOUND.includes(e.kind)) return 'NOT_FOUND'
  if (FORBIDDEN.includes(e.kind)) return 'FORBIDDEN'
  if (CONFLICT.includes(e.kind)) return 'CONFLICT'
  if (e.kind === 'ENVELOPE_TOO_LARGE') return 'PAYLOAD_TOO_LARGE'
  if (e.kind === 'CHAIN_UNREACHABLE') return 'INTERNAL_SERVER_ERROR'
  return 'BAD_REQUEST'
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
