import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { authorizationHeader, Identity, isKilnError, randomHex, sealReadToken, type Address } from '@kiln/protocol'
import { createKilnClient, type JobDetails } from '@kiln/sdk'
import { useNetwork } from '../support/use-network.ts'

/**
 * A job's env, command, logs, runs and outputs are its owner's. A stranger, with a key of its
 * own or none, reads none of them through any route; the public views show what a market
 * explorer needs and nothing else; no log file of the network holds the job's secret.
 */
describe('a job is private to its owner', () => {
  const fx = useNetwork({ providers: 1 })
  const secret = `planted-${randomHex(12)}`
  const logLine = `private-log-${randomHex(6)}`
  const command = ['sh', '-c', `echo ${logLine}; echo "$((6*7))" > /out/answer.txt`]
  let job: JobDetails

  /** Every answer a stranger got, to search for anything private. */
  const seen: { path: string; body: string }[] = []
  const raw = async (path: string, headers: Record<string, string> = {}) => {
    const res = await fetch(`${fx.net.api}${path}`, { headers })
    const body = await res.text()
    seen.push({ path, body })
    return { status: res.status, body }
  }
  const query = (proc: string, input: unknown) => `/trpc/${proc}?input=${encodeURIComponent(JSON.stringify(input))}`
  const codeOf = async (p: Promise<unknown>) =>
    p.then(
      () => 'no error',
      (e: unknown) => (isKilnError(e) ? e.kind : String(e)),
    )

  it('the owner reads everything: env, command, logs, runs, output', async () => {
    const owner = createKilnClient({ url: fx.net.api, identity: fx.client })
    const { jobId } = await owner.submit({
      name: 'secret-project',
      image: 'kiln/busybox:1',
      command,
      env: { API_TOKEN: secret },
      maxPricePerHour: 1_000_000,
      timeoutSec: 60,
      verification: { p: 0 },
    })
    job = await owner.watch(jobId)
    expect(job.state).toBe('done')
    expect(job.spec.env).toEqual({ API_TOKEN: secret })
    expect(job.spec.command).toEqual(command)
    expect((await owner.logs(jobId)).map((l) => l.text).join('')).toContain(logLine)
    expect((await owner.runs(jobId)).length).toBe(1)
    expect((await owner.download(job.outputDigest!)).byteLength).toBeGreaterThan(0)
  }, 120_000)

  it('another key cannot read its details, logs, runs or output, through the SDK or the raw routes', async () => {
    const stranger = Identity.generate()
    const theirs = createKilnClient({ url: fx.net.api, identity: stranger })
    expect(await codeOf(theirs.get(job.id))).toBe('NOT_JOB_OWNER')
    expect(await codeOf(theirs.logs(job.id))).toBe('NOT_JOB_OWNER')
    expect(await codeOf(theirs.runs(job.id))).toBe('NOT_JOB_OWNER')
    // "Not yours" and "no such output" are the same answer: a stranger learns nothing.
    expect(await codeOf(theirs.download(job.outputDigest!))).toBe('ARTIFACT_NOT_FOUND')
    const auth = { authorization: authorizationHeader(sealReadToken(stranger, fx.net.arbiter as Address)) }
    for (const proc of ['jobs.get', 'jobs.logs']) {
      const r = await raw(query(proc, { jobId: job.id }), auth)
      expect(r.status).toBe(403)
      expect(r.body).toContain('KILN_3004')
    }
    expect((await raw(`/artifacts/${job.outputDigest}`, auth)).status).toBe(404)
  })

  it('no key at all is refused with a stable code; a token for another marketplace, a forged or an expired one too', async () => {
    for (const proc of ['jobs.get', 'jobs.logs']) {
      const r = await raw(query(proc, { jobId: job.id }))
      expect(r.status).toBe(401)
      expect(JSON.parse(r.body)).toMatchObject({
        error: { data: { kiln: { code: 'KILN_3005', kind: 'AUTH_REQUIRED' } } },
      })
    }
    const art = await raw(`/artifacts/${job.outputDigest}`)
    expect(art.status).toBe(401)
    expect(JSON.parse(art.body)).toMatchObject({ code: 'KILN_3005' })

    const elsewhere = authorizationHeader(sealReadToken(fx.client, Identity.generate().address))
    expect((await raw(query('jobs.get', { jobId: job.id }), { authorization: elsewhere })).body).toContain('KILN_1008')
    const expired = authorizationHeader(
      sealReadToken(fx.client, fx.net.arbiter as Address, { now: Date.now() - 10 * 60_000 }),
    )
    expect((await raw(query('jobs.get', { jobId: job.id }), { authorization: expired })).body).toContain('KILN_1004')
    // The owner's token with a stranger's name on it: the signature no longer verifies.
    const token = sealReadToken(fx.client, fx.net.arbiter as Address)
    const forged = authorizationHeader({ ...token, signer: Identity.generate().address })
    expect((await raw(query('jobs.get', { jobId: job.id }), { authorization: forged })).body).toContain('KILN_1003')
    expect((await raw(`/artifacts/${job.outputDigest}`, { authorization: forged })).status).toBe(403)
  })

  it('the public views show what an explorer needs and nothing private', async () => {
    const list = await raw(query('jobs.list', { limit: 50 }))
    const one = await raw(query('jobs.public', { jobId: job.id }))
    const providers = await raw('/trpc/network.providers')
    for (const r of [list, one, providers]) expect(r.status).toBe(200)
    const shown = (JSON.parse(one.body) as { result: { data: Record<string, unknown> } }).result.data
    expect(shown).toMatchObject({
      id: job.id,
      state: 'done',
      image: 'kiln/busybox:1',
      provider: job.provider,
      settlement: { signature: job.settlementSignature },
    })
    expect(shown.resources).toEqual(job.spec.resources)
    for (const field of ['spec', 'name', 'env', 'command', 'outputDigest', 'receipt', 'lock', 'pendingCosign', 'error'])
      expect(shown).not.toHaveProperty(field)
  })

  it('no answer to a stranger and no log file holds the secret, the command, the logs or the output digest; no answer carries a stack', async () => {
    // Bad input and an unknown job: errors keep their code and say nothing of the server's insides.
    const bad = await raw(query('jobs.public', { jobId: 'job_nope' }))
    expect(bad.status).toBe(400)
    expect(JSON.parse(bad.body)).toMatchObject({
      error: { data: { kiln: { kind: 'PAYLOAD_INVALID', context: { issues: [{ path: 'jobId' }] } } } },
    })
    const missing = await raw(query('jobs.public', { jobId: 'job_0000000000000000000000000' }))
    expect(missing.body).toContain('KILN_3001')
    for (const { path, body } of seen) {
      // An answer may name what the stranger asked for (the digest in its own URL), nothing more.
      const needles = [
        secret,
        logLine,
        'secret-project',
        '"stack"',
        'node_modules',
        '/src/',
        ...(path.includes(job.outputDigest!) ? [] : [job.outputDigest!]),
      ]
      for (const needle of needles) expect(body, path).not.toContain(needle)
    }
    const logs = filesUnder(fx.net.dataDir).filter((f) => f.endsWith('.log'))
    expect(logs.length).toBeGreaterThanOrEqual(2)
    for (const f of logs) expect(readFileSync(f, 'utf8'), f).not.toContain(secret)
  })
})

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name)
    return statSync(p).isDirectory() ? filesUnder(p) : [p]
  })
}
