import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import type { IncomingMessage } from 'node:http'
import { join } from 'node:path'

/**
 * The dashboard's door: one random token per daemon start, printed once and kept in
 * `<data>/dashboard.token` (mode 0600) for the CLI. Anything on this machine can reach
 * 127.0.0.1, so every request must carry it.
 */
export const COOKIE = 'kiln_dashboard'
export const TOKEN_FILE = 'dashboard.token'

export function newToken(): string {
  return randomBytes(32).toString('base64url')
}

export function tokenPath(dataDir: string): string {
  return join(dataDir, TOKEN_FILE)
}

export function saveToken(dataDir: string, token: string): string {
  mkdirSync(dataDir, { recursive: true })
  const path = tokenPath(dataDir)
  // A file left by an older start may have looser permissions; writeFile's mode only applies on create.
  rmSync(path, { force: true })
  writeFileSync(path, `${token}\n`, { mode: 0o600 })
  chmodSync(path, 0o600)
  return path
}

export function readToken(dataDir: string): string | undefined {
  const path = tokenPath(dataDir)
  return existsSync(path) ? readFileSync(path, 'utf8').trim() || undefined : undefined
}

/** Constant-time: hashing first makes both sides the same length, so even the length does not leak. */
export function tokenMatches(given: string | undefined, token: string): boolean {
  if (given === undefined || given === '') return false
  const a = createHash('sha256').update(given).digest()
  const b = createHash('sha256').update(token).digest()
  return timingSafeEqual(a, b)
}

export function bearerOf(req: IncomingMessage): string | undefined {
  const h = req.headers.authorization
  return h && /^Bearer\s+/i.test(h) ? h.replace(/^Bearer\s+/i, '').trim() : undefined
}

export function cookieOf(req: IncomingMessage): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=')
    if (k === COOKIE) return decodeURIComponent(v.join('='))
  }
  return undefined
}

export function sessionCookie(token: string): string {
  return `${COOKIE}=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/`
}

export type Auth = { ok: false } | { ok: true; via: 'header' | 'cookie' }

export function authenticate(req: IncomingMessage, token: string): Auth {
  if (tokenMatches(bearerOf(req), token)) return { ok: true, via: 'header' }
  if (tokenMatches(cookieOf(req), token)) return { ok: true, via: 'cookie' }
  return { ok: false }
}

/** The names this server answers to; anything else is another site's page (DNS rebinding) or a typo. */
export function allowedHosts(port: number): Set<string> {
  return new Set([`127.0.0.1:${port}`, `localhost:${port}`])
}

/**
 * A state change carried by the cookie alone must come from our own page: browsers send
 * Origin on every POST, and a page elsewhere cannot forge it. The token header needs no check:
 * another site cannot read the token to send it.
 */
export function sameOrigin(req: IncomingMessage, port: number): boolean {
  const origin = req.headers.origin
  if (typeof origin === 'string') return [...allowedHosts(port)].some((h) => origin === `http://${h}`)
  return req.headers['sec-fetch-site'] === 'same-origin'
}
