import { TRPCClientError } from '@trpc/client'
import { KilnError, kilnErrorFromJSON } from '@kiln/protocol'

/** Turns an API failure back into the KilnError the server raised (same code and context). */
export function toKilnError(err: unknown): unknown {
  if (err instanceof TRPCClientError) {
    const data = err.data as { kiln?: unknown } | undefined
    const rebuilt = kilnErrorFromJSON(data?.kiln)
    if (rebuilt) return rebuilt
    // No HTTP answer at all (refused, DNS, reset): the marketplace is unreachable.
    if (data === undefined || (data as { httpStatus?: number }).httpStatus === undefined) {
      return new KilnError('PEER_UNREACHABLE', `cannot reach the Kiln API: ${err.message}`, { cause: String((err.cause as Error | undefined)?.cause ?? err.cause ?? '') })
    }
    return new KilnError('PAYLOAD_INVALID', err.message, { httpStatus: (data as { httpStatus?: number }).httpStatus })
  }
  return err
}

export async function call<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (e) {
    throw toKilnError(e)
  }
}
