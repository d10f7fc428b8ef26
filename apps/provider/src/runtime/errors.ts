/** Helpers for the errors dockerode hands back, which come in several shapes. */

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ENOENT',
  'EACCES',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENOTFOUND',
])

/** True when the engine could not be reached at all (as opposed to answering with an error). */
export function isConnectionError(e: unknown): boolean {
  const err = e as { code?: unknown; statusCode?: unknown; errno?: unknown } | null
  if (err === null || typeof err !== 'object') return false
  return err.statusCode === undefined && typeof err.code === 'string' && CONNECTION_CODES.has(err.code)
}

/** The engine's own message when it sent one (`json.message`), else the error's message. */
export function dockerMessage(e: unknown): string {
  if (e !== null && typeof e === 'object') {
    const json = (e as { json?: unknown }).json
    if (json !== null && typeof json === 'object' && typeof (json as { message?: unknown }).message === 'string') {
      return (json as { message: string }).message.trim()
    }
    const message = (e as { message?: unknown }).message
    // dockerode prefixes the engine's text with "(HTTP code 500) server error - ".
    if (typeof message === 'string') return message.replace(/^\(HTTP code \d+\)[^-]*- /, '').trim()
  }
  return String(e)
}

export function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  // The loser of the race may still reject later; that must not become an unhandled rejection.
  p.catch(() => {})
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms)
  })
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer))
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
