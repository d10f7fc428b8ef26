import { spawn } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { kilnErrorFromJSON, KilnError } from '@kiln/protocol'
import { reportError } from '../src/context.ts'
import { run } from '../src/main.ts'

describe('kiln CLI', () => {
  it('refuses a malformed spec before contacting anyone: names the field, exits 2', async () => {
    const { dir, io, out, err } = setup()
    const spec = join(dir, 'job.yaml')
    writeFileSync(spec, 'image: kiln/matmul:1\nmaxPricePerHour: 1000000\nresources:\n  memoryMb: 1\n')
    // The API points at a closed port: had the CLI tried to send anything, it would fail differently.
    const code = await run(['--api', 'http://127.0.0.1:9', '--keypair', join(dir, 'id.json'), 'submit', spec], io)
    expect(code).toBe(2)
    expect(err.join('\n')).toMatch(/KILN_2001/)
    expect(err.join('\n')).toMatch(/resources\.memoryMb: .*\(expected >= 16\)/)
    expect(out).toEqual([])
  })

  it('reports an unreadable spec file with exit 2 and --json output', async () => {
    const { dir, io, out } = setup()
    const code = await run(['--json', '--keypair', join(dir, 'id.json'), 'submit', join(dir, 'missing.yaml')], io)
    expect(code).toBe(2)
    expect(JSON.parse(out[0]!)).toMatchObject({ ok: false, error: { code: 'KILN_2002', kind: 'SPEC_FILE_UNREADABLE' } })
  })

  it('creates a keypair once and reports the same address after', async () => {
    const { dir, io, out } = setup()
    expect(await run(['--json', '--keypair', join(dir, 'id.json'), 'keygen'], io)).toBe(0)
    expect(await run(['--json', '--keypair', join(dir, 'id.json'), 'keygen'], io)).toBe(0)
    const [a, b] = out.map((l) => JSON.parse(l) as { address: string; created: boolean })
    expect(a!.created).toBe(true)
    expect(b!.created).toBe(false)
    expect(b!.address).toBe(a!.address)
  })

  it('exits 4 when the marketplace cannot be reached, naming the URL and what to check', async () => {
    const { dir, io, err } = setup()
    await run(['--keypair', join(dir, 'id.json'), 'keygen'], io)
    const api = `http://127.0.0.1:${await closedPort()}`
    expect(await run(['providers'], io, { KILN_API: api, KILN_KEYPAIR: join(dir, 'id.json') })).toBe(4)
    const text = err.join('\n')
    expect(text).toContain(`cannot reach the Kiln API at ${api}: connect ECONNREFUSED`)
    expect(text).toContain(`--api or KILN_API is ${api}; is a marketplace running there`)
    expect(text).not.toMatch(/fetch failed/)
  })

  it('exits 4 when KILN_API answers but is not a Kiln API', async () => {
    const { dir, io, err } = setup()
    const server = createServer((_req, res) => {
      res.writeHead(404, { 'content-type': 'text/html' }).end('<html>not here</html>')
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`
    try {
      await run(['--keypair', join(dir, 'id.json'), 'keygen'], io)
      expect(await run(['--api', url, '--keypair', join(dir, 'id.json'), 'providers'], io)).toBe(4)
      expect(err.join('\n')).toContain(`cannot reach the Kiln API at ${url}`)
      expect(err.join('\n')).toContain(`KILN_API is ${url}`)
    } finally {
      server.close()
    }
  })

  it('refuses a mistyped job id in one line, exit 2, before sending anything', async () => {
    const { dir, io, out, err } = setup()
    await run(['--keypair', join(dir, 'id.json'), 'keygen'], io)
    // A closed port: a request would end in exit 4, not 2.
    for (const cmd of ['status', 'logs', 'cancel', 'watch']) {
      err.length = 0
      expect(await run(['--api', 'http://127.0.0.1:9', '--keypair', join(dir, 'id.json'), cmd, 'job_nope'], io)).toBe(2)
      expect(err).toHaveLength(1)
      expect(err[0]).toMatch(/KILN_2001 "job_nope" is not a job id: job ids look like job_\w+ .*kiln jobs lists yours/)
    }
    expect(out).toHaveLength(1)
  })

  it('prints a request the server refused for one field in one line, exit 2', () => {
    const { io, err } = setup()
    // As the marketplace answers `jobs.get` with a bad jobId (packages/api/src/trpc.ts).
    const issue = {
      path: 'jobId',
      message: 'a job id like job_01h...',
      expected: 'job_ and 10 to 40 letters or digits',
    }
    const e = kilnErrorFromJSON(
      new KilnError('PAYLOAD_INVALID', `invalid request: jobId: ${issue.message}`, { issues: [issue] }).toJSON(),
    )
    expect(reportError(io, e)).toBe(2)
    expect(err).toEqual([
      expect.stringContaining(
        'KILN_2001 invalid request: jobId: a job id like job_01h... (expected job_ and 10 to 40 letters or digits)',
      ),
    ])
    // Several fields still get a line each.
    err.length = 0
    reportError(
      io,
      new KilnError('PAYLOAD_INVALID', 'job spec is invalid', { issues: [issue, { ...issue, path: 'image' }] }),
    )
    expect(err.join('\n').split('\n')).toHaveLength(3)
  })

  it('stops quietly with exit 0 when its output pipe closes early (kiln ... | head)', async () => {
    const { dir } = setup()
    const bin = join(import.meta.dirname, '..', 'bin', 'kiln.mjs')
    const child = spawn(process.execPath, [bin, '--keypair', join(dir, 'id.json'), '--help'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    // The reader goes away before the CLI writes a line, as `head -3` does after its third.
    child.stdout.destroy()
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString()
    })
    const code = await new Promise<number | null>((r) => child.once('exit', r))
    expect(stderr).not.toMatch(/EPIPE|Error/)
    expect(code).toBe(0)
  })
})

/** A loopback port nothing listens on (fetch refuses some well-known ones, such as 9, before dialling). */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const { port } = server.address() as { port: number }
  await new Promise((r) => server.close(r))
  return port
}

function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-cli-'))
  const out: string[] = []
  const err: string[] = []
  return { dir, out, err, io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) } }
}
