import { mkdtempSync, statSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newToken, readToken, saveToken, tokenMatches } from '../src/dashboard/auth.ts'
import { startDashboard, type Dashboard } from '../src/dashboard/server.ts'
import { stubControlApi } from './support/control.ts'

interface Reply {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
}

/** node:http, not fetch: the tests need to set Host and Origin as another page or site would. */
function call(
  d: Dashboard,
  path: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: d.port,
        path,
        method: opts.method ?? 'GET',
        headers: { host: `127.0.0.1:${d.port}`, ...opts.headers },
      },
      (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (c: string) => (body += c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
      },
    )
    req.on('error', reject)
    req.end(opts.body)
  })
}

describe('dashboard server', () => {
  const token = newToken()
  const calls: string[] = []
  let d: Dashboard
  const bearer = { authorization: `Bearer ${token}` }
  const json = { 'content-type': 'application/json' }

  beforeAll(async () => {
    d = await startDashboard({ api: stubControlApi(calls), token, port: 0, log: { info() {}, warn() {} } })
  })
  afterAll(async () => {
    await d?.close()
  })

  it('answers 401 to any request without the token, or with a wrong one', async () => {
    for (const path of ['/', '/api/status', '/api/logs?after=0', '/api/jobs', '/api/earnings', '/nope']) {
      expect((await call(d, path)).status).toBe(401)
    }
    expect((await call(d, '/api/status', { headers: { authorization: `Bearer ${token}x` } })).status).toBe(401)
    expect((await call(d, '/?token=wrong')).status).toBe(401)
    expect((await call(d, '/api/pause', { method: 'POST', headers: json, body: '{}' })).status).toBe(401)
    expect(calls).toEqual([])
  })

  it('takes the token as a Bearer header', async () => {
    const r = await call(d, '/api/status', { headers: bearer })
    expect(r.status).toBe(200)
    expect(JSON.parse(r.body)).toMatchObject({ state: 'running' })
  })

  it('trades ?token= for an HttpOnly SameSite=Strict cookie and takes it out of the URL', async () => {
    const r = await call(d, `/?token=${token}`)
    expect(r.status).toBe(303)
    expect(r.headers.location).toBe('/')
    const cookie = String(r.headers['set-cookie'])
    expect(cookie).toMatch(/^kiln_dashboard=[^;]+; HttpOnly; SameSite=Strict; Path=\//)
    const page = await call(d, '/', { headers: { cookie: cookie.split(';')[0]! } })
    expect(page.status).toBe(200)
    expect(page.body).toContain('data-testid="state-badge"')
    // Scripts run only with this response's nonce: no injected script can.
    const nonce = /script-src 'nonce-([^']+)'/.exec(String(page.headers['content-security-policy']))?.[1]
    expect(nonce).toBeTruthy()
    expect(page.body).toContain(`<script nonce="${nonce}">`)
  })

  it('takes a change with the cookie only from its own page (CSRF), always with the header', async () => {
    const cookie = { cookie: `kiln_dashboard=${encodeURIComponent(token)}` }
    const body = JSON.stringify({ stopRunning: true })
    expect((await call(d, '/api/pause', { method: 'POST', headers: { ...cookie, ...json }, body })).status).toBe(403)
    expect(
      (
        await call(d, '/api/pause', {
          method: 'POST',
          headers: { ...cookie, ...json, origin: 'http://evil.example' },
          body,
        })
      ).status,
    ).toBe(403)
    expect(calls).toEqual([])
    expect(
      (
        await call(d, '/api/pause', {
          method: 'POST',
          headers: { ...cookie, ...json, origin: `http://127.0.0.1:${d.port}` },
          body,
        })
      ).status,
    ).toBe(200)
    expect((await call(d, '/api/resume', { method: 'POST', headers: { ...bearer, ...json }, body: '{}' })).status).toBe(
      200,
    )
    expect(calls).toEqual(['pause:true', 'resume'])
  })

  it('refuses another host name (DNS rebinding), non-JSON bodies and bad prices', async () => {
    expect((await call(d, '/api/status', { headers: { ...bearer, host: `evil.example:${d.port}` } })).status).toBe(421)
    expect(
      (
        await call(d, '/api/price', {
          method: 'POST',
          headers: { ...bearer, 'content-type': 'text/plain' },
          body: '{"pricePerHour":5}',
        })
      ).status,
    ).toBe(415)
    const bad = await call(d, '/api/price', {
      method: 'POST',
      headers: { ...bearer, ...json },
      body: '{"pricePerHour":0.5}',
    })
    expect(bad.status).toBe(400)
    expect(JSON.parse(bad.body).error).toMatch(/pricePerHour/)
    const ok = await call(d, '/api/price', {
      method: 'POST',
      headers: { ...bearer, ...json },
      body: '{"pricePerHour":500000}',
    })
    expect(JSON.parse(ok.body)).toMatchObject({ pricePerHour: 500_000 })
  })

  it('saves the token for the CLI, readable by its owner only', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-dash-token-'))
    const path = saveToken(dir, token)
    expect(statSync(path).mode & 0o777).toBe(0o600)
    expect(readToken(dir)).toBe(token)
    expect(tokenMatches(token, token)).toBe(true)
    expect(tokenMatches(token.slice(1), token)).toBe(false)
    expect(tokenMatches(undefined, token)).toBe(false)
  })
})
