import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { readToken } from './dashboard/auth.ts'

/** Where a running daemon says its dashboard is, so the CLI can find a port picked at random. */
export const ENDPOINT_FILE = 'dashboard.json'

export interface Endpoint {
  url: string
  pid: number
  startedAt: number
}

export function writeEndpoint(dataDir: string, e: Endpoint): void {
  writeFileSync(join(dataDir, ENDPOINT_FILE), `${JSON.stringify(e)}\n`, { mode: 0o600 })
}

export function removeEndpoint(dataDir: string): void {
  rmSync(join(dataDir, ENDPOINT_FILE), { force: true })
}

/** No daemon answers for this data dir; `message` says how to start one. */
export class DaemonNotRunningError extends Error {
  override readonly name = 'DaemonNotRunningError'
}

/** The daemon answered with an error (bad input, or a failure on its side). */
export class ControlError extends Error {
  override readonly name = 'ControlError'
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message)
  }
}

export interface ControlClient {
  url: string
  get<T>(path: string): Promise<T>
  post<T>(path: string, body: unknown): Promise<T>
}

/** Talks to the daemon of `dataDir` with the token it saved there (the CLI runs as the same user). */
export function connectControl(dataDir: string, timeoutMs = 10_000): ControlClient {
  const how = `start it with: kiln-provider start --data ${dataDir}`
  const path = join(dataDir, ENDPOINT_FILE)
  if (!existsSync(path)) throw new DaemonNotRunningError(`no provider daemon is running for ${dataDir}; ${how}`)
  let endpoint: Endpoint
  try {
    endpoint = JSON.parse(readFileSync(path, 'utf8')) as Endpoint
  } catch {
    throw new DaemonNotRunningError(`${path} is unreadable, so no daemon can be found; ${how}`)
  }
  const token = readToken(dataDir)
  if (!token) throw new DaemonNotRunningError(`no dashboard token in ${dataDir}; ${how}`)
  const call = async <T>(method: 'GET' | 'POST', p: string, body?: unknown): Promise<T> => {
    let res: Response
    try {
      res = await fetch(new URL(p, endpoint.url), {
        method,
        signal: AbortSignal.timeout(timeoutMs),
        headers: {
          authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      })
    } catch (e) {
      // The file outlived its daemon (killed, crashed): say so rather than "fetch failed".
      throw new DaemonNotRunningError(
        `the provider daemon for ${dataDir} is not answering at ${endpoint.url} (${(e as Error).cause ?? (e as Error).message}); ${how}`,
      )
    }
    const data = (await res.json().catch(() => ({}))) as { error?: string }
    if (res.status === 401)
      throw new DaemonNotRunningError(
        `the daemon at ${endpoint.url} does not take the token in ${dataDir} (another daemon took the port?); restart it: kiln-provider start --data ${dataDir}`,
      )
    if (!res.ok) throw new ControlError(res.status, data.error ?? `HTTP ${res.status}`)
    return data as T
  }
  return { url: endpoint.url, get: (p) => call('GET', p), post: (p, body) => call('POST', p, body) }
}
