import { TRPCClientError } from '@trpc/client'
import { KilnError, kilnErrorFromJSON } from '@kiln/protocol'

/** Turns an API failure back into the KilnError the server raised (same code and context); `url` is the API asked. */
export function toKilnError(err: unknown, url?: string): unknown {
  if (err instanceof TRPCClientError) {
    const data = err.data as { kiln?: unknown } | undefined
    const rebuilt = kilnErrorFromJSON(data?.kiln)
    if (rebuilt) return rebuilt
    // No HTTP answer at all (refused, DNS, reset): the marketplace is unreachable.
    if (data === undefined || (data as { httpStatus?: number }).httpStatus === undefined) {
      return unreachable(url, (err.cause as Error | undefined)?.cause ?? err.cause ?? err.message)
    }
    return new KilnError('PAYLOAD_INVALID', err.message, { httpStatus: (data as { httpStatus?: number }).httpStatus })
  }
  return err
}

/** No answer from `url`, or none a Kiln API gives; `cause` is what fetch said (refused, not found, not JSON). */
export function unreachable(url: string | undefined, cause: unknown): KilnError {
  // Node's fetch hides the reason one level down; an AggregateError (IPv4 and IPv6 both refused) has only a code.
  const c = cause as { message?: string; code?: string } | undefined
  const why = c?.message || c?.code || String(cause)
  return new KilnError('PEER_UNREACHABLE', `cannot reach the Kiln API${url ? ` at ${url}` : ''}: ${why}`, {
    ...(url ? { url } : {}),
    cause: why,
  })
}

export async function call<T>(fn: () => Promise<T>, url?: string): Promise<T> {
  try {
    return await fn()
  } catch (e) {
    throw toKilnError(e, url)
  }
}
