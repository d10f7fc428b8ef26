import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { z } from 'zod'
import { isKilnError } from '@kiln/protocol'
import type { EarningsView, JobView, StatusView } from '../control-views.ts'
import type { Logger } from '../log.ts'
import type { LogPage } from '../log-ring.ts'
import { allowedHosts, authenticate, sameOrigin, sessionCookie, tokenMatches } from './auth.ts'

/** What the dashboard (and `kiln-provider status|pause|resume|price`) can see and do. */
export interface ControlApi {
  status(): StatusView
  logs(after: number): LogPage
  jobs(): JobView[]
  earnings(): Promise<EarningsView>
  pause(opts: { stopRunning?: boolean }): Promise<StatusView>
  resume(): Promise<StatusView>
  setPrice(pricePerHour: number): Promise<StatusView>
}

export interface DashboardInit {
  api: ControlApi
  token: string
  /** 0 picks a free port. When the port is taken, a free one is used instead (and logged). */
  port: number
  log: Logger
}

export interface Dashboard {
  url: string
  port: number
  close(): Promise<void>
}

const PAGE = readFileSync(new URL('./page.html', import.meta.url), 'utf8')
const MAX_BODY = 8 * 1024
const PauseBody = z.object({ stopRunning: z.boolean().default(false) }).strict()
const PriceBody = z.object({ pricePerHour: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER) }).strict()

class HttpError extends Error {
  override readonly name = 'HttpError'
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message)
  }
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body)
  res.writeHead(status, {
    'content-type': typeof body === 'string' ? 'text/html; charset=utf-8' : 'application/json',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'x-frame-options': 'DENY',
    ...headers,
  })
  res.end(text)
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  if (!/^application\/json\b/.test(req.headers['content-type'] ?? ''))
    throw new HttpError(415, 'send a JSON body (content-type: application/json)')
  let size = 0
  const parts: Buffer[] = []
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > MAX_BODY) throw new HttpError(413, 'body too large')
    parts.push(chunk as Buffer)
  }
  const text = Buffer.concat(parts).toString('utf8')
  try {
    return text === '' ? {} : JSON.parse(text)
  } catch {
    throw new HttpError(400, 'the body is not JSON')
  }
}

function parse<T>(schema: z.ZodType<T>, value: unknown): T {
  const r = schema.safeParse(value)
  if (!r.success)
    throw new HttpError(400, r.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '))
  return r.data
}

/**
 * The local dashboard and control API, on 127.0.0.1 only. Every request needs the token:
 * `Authorization: Bearer`, or once `?token=` on a page load, which sets an HttpOnly,
 * SameSite=Strict cookie and redirects to the same page without it.
 */
export async function startDashboard(init: DashboardInit): Promise<Dashboard> {
  const { api, token, log } = init
  let port = 0

  async function route(req: IncomingMessage, res: ServerResponse, url: URL, via: 'header' | 'cookie'): Promise<void> {
    const path = url.pathname
    if (req.method === 'GET') {
      if (path === '/') {
        const nonce = randomBytes(16).toString('base64')
        return send(res, 200, PAGE.replaceAll('__NONCE__', nonce), {
          'content-security-policy': `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
        })
      }
      if (path === '/api/status') return send(res, 200, api.status())
      if (path === '/api/logs') return send(res, 200, api.logs(Number(url.searchParams.get('after') ?? 0) || 0))
      if (path === '/api/jobs') return send(res, 200, api.jobs())
      if (path === '/api/earnings') return send(res, 200, await api.earnings())
      throw new HttpError(404, `no ${path} here`)
    }
    if (req.method !== 'POST') throw new HttpError(405, 'GET or POST')
    if (via === 'cookie' && !sameOrigin(req, port))
      throw new HttpError(403, 'a change needs the token header, or to come from the dashboard page itself')
    const body = await readJson(req)
    if (path === '/api/pause') return send(res, 200, await api.pause(parse(PauseBody, body)))
    if (path === '/api/resume') return send(res, 200, await api.resume())
    if (path === '/api/price') return send(res, 200, await api.setPrice(parse(PriceBody, body).pricePerHour))
    throw new HttpError(404, `no ${path} here`)
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!allowedHosts(port).has(req.headers.host ?? ''))
      return send(res, 421, { error: 'this dashboard answers only to 127.0.0.1 and localhost' })
    const url = new URL(req.url ?? '/', `http://127.0.0.1:${port}`)
    const fromQuery = url.searchParams.get('token') ?? undefined
    if (req.method === 'GET' && fromQuery !== undefined && tokenMatches(fromQuery, token)) {
      // Trade the token in the URL for a cookie, and take it out of the address bar and history.
      url.searchParams.delete('token')
      res.writeHead(303, {
        location: `${url.pathname}${url.search}`,
        'set-cookie': sessionCookie(token),
        'cache-control': 'no-store',
        'referrer-policy': 'no-referrer',
      })
      return void res.end()
    }
    const auth = authenticate(req, token)
    if (!auth.ok) {
      const hint =
        'open the dashboard link printed by `kiln-provider start`, or send Authorization: Bearer <token> (the token is in <data>/dashboard.token)'
      return url.pathname.startsWith('/api/')
        ? send(res, 401, { error: 'missing or wrong token', hint }, { 'www-authenticate': 'Bearer' })
        : send(
            res,
            401,
            `<!doctype html><title>Kiln provider</title><p>This dashboard needs its token: ${hint.replace(/</g, '&lt;')}.</p>`,
          )
    }
    await route(req, res, url, auth.via)
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      const status = e instanceof HttpError ? e.status : isKilnError(e) ? 400 : 500
      if (status === 500) log.warn({ err: String(e), path: req.url?.split('?')[0] }, 'dashboard request failed')
      if (!res.headersSent)
        send(res, status, { error: (e as Error).message, ...(isKilnError(e) ? { code: e.code } : {}) })
      else res.end()
    })
  })
  const listen = (p: number) =>
    new Promise<number>((resolve, reject) => {
      server.once('error', reject)
      server.listen(p, '127.0.0.1', () => {
        server.off('error', reject)
        resolve((server.address() as AddressInfo).port)
      })
    })
  try {
    port = await listen(init.port)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE' || init.port === 0) throw e
    // Another provider (or program) has the port: a dashboard elsewhere beats none.
    port = await listen(0)
    log.warn({ wanted: init.port, port }, 'dashboard port taken; using a free one')
  }
  return {
    url: `http://127.0.0.1:${port}/`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}
