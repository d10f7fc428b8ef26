import { describe, expect, it } from 'vitest'
import { fetchRequestHandler } from '@trpc/server/adapters/fetch'
import { KilnError, type Address } from '@kiln/protocol'
import { appRouter, createCallerFactory, type Marketplace } from '../src/index.ts'

const JOB = 'job_0000000000abcdef'
const OWNER = 'Owner1111111111111111111111111111111111111' as Address

describe('appRouter', () => {
  it('refuses the owner-only reads without a read token, before the marketplace is asked', async () => {
    const { caller, asked } = setup({ reader: null })
    await expect(caller.jobs.get({ jobId: JOB })).rejects.toMatchObject({
      code: 'UNAUTHORIZED',
      cause: { kind: 'AUTH_REQUIRED', context: { jobId: JOB } },
    })
    await expect(caller.jobs.logs({ jobId: JOB })).rejects.toMatchObject({
      code: 'UNAUTHORIZED',
      cause: { kind: 'AUTH_REQUIRED' },
    })
    expect(asked).toEqual([])
  })

  it('hands the owner reads the reader and plain inputs, with their defaults', async () => {
    const { caller, asked } = setup({ reader: OWNER })
    await caller.jobs.get({ jobId: JOB })
    await caller.jobs.get({ jobId: JOB, watch: true })
    await caller.jobs.logs({ jobId: JOB })
    expect(asked).toEqual([
      ['ownedJob', { jobId: JOB, reader: OWNER, watch: false }],
      ['ownedJob', { jobId: JOB, reader: OWNER, watch: true }],
      ['logs', { jobId: JOB, reader: OWNER, after: -1, limit: 500 }],
    ])
  })

  it('maps a Kiln error to its HTTP meaning and keeps it whole', async () => {
    const { caller, fetch } = setup({
      market: { publicJob: () => Promise.reject(new KilnError('JOB_NOT_FOUND', `no job ${JOB}`, { jobId: JOB })) },
    })
    await expect(caller.jobs.public({ jobId: JOB })).rejects.toMatchObject({
      code: 'NOT_FOUND',
      cause: { kind: 'JOB_NOT_FOUND' },
    })
    const res = await fetch(`jobs.public?input=${encodeURIComponent(JSON.stringify({ jobId: JOB }))}`)
    expect(res.status).toBe(404)
    expect(res.body).toMatchObject({
      error: {
        message: `no job ${JOB}`,
        data: { code: 'NOT_FOUND', httpStatus: 404, kiln: { kind: 'JOB_NOT_FOUND', context: { jobId: JOB } } },
      },
    })
  })

  it('answers an unexpected failure with no stack and none of its message', async () => {
    const { fetch } = setup({
      market: { list: () => Promise.reject(new Error('relation "jobs" does not exist at /srv/kiln/src/store.ts:12')) },
    })
    const res = await fetch('jobs.list')
    expect(res.status).toBe(500)
    expect(res.text).not.toMatch(/stack|relation|\.ts:/)
    expect(res.body).toMatchObject({
      error: {
        message: 'the marketplace failed to answer; it logged the details',
        data: { kiln: { kind: 'INTERNAL_ERROR' } },
      },
    })
  })

  it('names the bad field of an input it refuses, with no stack', async () => {
    const res = await setup().fetch(`jobs.public?input=${encodeURIComponent(JSON.stringify({ jobId: 'nope' }))}`)
    expect(res.status).toBe(400)
    expect(res.text).not.toContain('stack')
    expect(res.body).toMatchObject({
      error: { data: { kiln: { kind: 'PAYLOAD_INVALID', context: { issues: [{ path: 'jobId' }] } } } },
    })
  })
})

function setup(init: { reader?: Address | null; market?: Partial<Marketplace> } = {}) {
  const asked: [string, unknown][] = []
  const record =
    <T>(name: string, answer: () => T) =>
    (q: unknown) => {
      asked.push([name, q])
      return answer()
    }
  const unstubbed = () => Promise.reject(new Error('not stubbed'))
  const market: Marketplace = {
    info: () => ({
      arbiter: 'a',
      mint: 'm',
      rpcUrl: 'r',
      meshAddrs: [],
      version: '0',
      token: { symbol: 'tUSDC', decimals: 6 },
      verification: { p: 0, bondRatio: 1 },
      feeBps: 0,
      minReputation: 0,
    }),
    providers: () => [],
    submit: record('submit', () => Promise.resolve({ jobId: JOB, maxCost: 1 })),
    lock: record('lock', unstubbed),
    cancel: record('cancel', unstubbed),
    cosign: record('cosign', unstubbed),
    runs: record('runs', () => Promise.resolve([])),
    ownedJob: record('ownedJob', () => Promise.resolve({ id: JOB, events: [] } as never)),
    logs: record('logs', () => Promise.resolve([])),
    publicJob: record('publicJob', () => Promise.resolve({ id: JOB, events: [] } as never)),
    list: record('list', () => Promise.resolve([])),
    ...init.market,
  }
  const ctx = { market, reader: () => init.reader ?? null }
  const caller = createCallerFactory(appRouter)(ctx)
  /** The router over HTTP semantics (no socket): what a client would be answered. */
  const fetch = async (path: string) => {
    const res = await fetchRequestHandler({
      endpoint: '/trpc',
      router: appRouter,
      req: new Request(`http://kiln.test/trpc/${path}`),
      createContext: () => ctx,
    })
    const text = await res.text()
    return { status: res.status, text, body: JSON.parse(text) as unknown }
  }
  return { caller, asked, fetch }
}
