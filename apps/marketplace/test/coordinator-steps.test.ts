import { describe, expect, it, vi } from 'vitest'
import { Identity, isKilnError, KilnError, type Address } from '@kiln/protocol'
import type { Job, JobPatch } from '@kiln/scheduler'
import { FollowedRuns, PlacementBook, SealedSecrets } from '../src/coordinator/book.ts'
import { failRun } from '../src/coordinator/lease-outcome.ts'
import { reconcile } from '../src/coordinator/reconcile.ts'
import { resumeRun } from '../src/coordinator/resume.ts'
import { settle } from '../src/coordinator/settle.ts'
import type { CoordinatorContext, Next } from '../src/coordinator/types.ts'
import { verifyFamily } from '../src/coordinator/verify.ts'

// Each step is driven with a stubbed hand-off port: the test sees what the step asked for next.
// The job store is an in-memory stand-in with the real store's guarded transitions.

const [P1, P2, P3] = [Identity.generate().address, Identity.generate().address, Identity.generate().address]

function row(patch: Partial<Job> & Pick<Job, 'id' | 'state'>): Job {
  return {
    parentId: null,
    role: 'job',
    client: Identity.generate().address,
    spec: { timeoutSec: 60, outputs: { maxBytes: 1024 } },
    provider: null,
    attempt: 1,
    excluded: [],
    spotCheck: false,
    lockAmount: 1000,
    settleAction: null,
    settleOutcome: null,
    outputDigest: null,
    outputBytes: null,
    error: null,
    receipt: null,
    verdict: null,
    runDeadline: null,
    cancelRequestedAt: null,
    createdAt: 0,
    updatedAt: 0,
    ...patch,
  } as unknown as Job
}

function fakeStore(rows: Job[]) {
  const jobs = new Map(rows.map((r) => [r.id, { ...r }]))
  const moves: { id: string; to: string; patch: JobPatch }[] = []
  return {
    jobs,
    moves,
    get: async (id: string) => jobs.get(id),
    family: async (root: string) => [...jobs.values()].filter((j) => j.id === root || j.parentId === root),
    update: async (id: string, patch: JobPatch) => void Object.assign(jobs.get(id) ?? {}, patch),
    transition: async (id: string, from: string[], to: string, _reason: string, patch: JobPatch = {}) => {
      const j = jobs.get(id)
      if (!j || !from.includes(j.state)) return undefined
      Object.assign(j, patch, { state: to })
      moves.push({ id, to, patch })
      return { ...j }
    },
    list: async (q: { states: string[]; runs?: boolean | 'only' }) =>
      [...jobs.values()].filter((j) => q.states.includes(j.state) && (q.runs !== 'only' || j.parentId !== null)),
    addRun: async () => undefined,
  }
}

function stubNext() {
  return {
    place: vi.fn<Next['place']>(),
    run: vi.fn<Next['run']>(),
    resume: vi.fn<Next['resume']>(async () => 'unreachable'),
    finish: vi.fn<Next['finish']>(async () => {}),
    fail: vi.fn<Next['fail']>(async () => {}),
    verify: vi.fn<Next['verify']>(async () => {}),
    settle: vi.fn<Next['settle']>(async () => {}),
  }
}

function ctxOf(rows: Job[], extra: Record<string, unknown> = {}) {
  const store = fakeStore(rows)
  const next = stubNext()
  const inventory = { recordOutcome: vi.fn(async () => 0.5), get: () => undefined, list: () => [] }
  const ctx = {
    store,
    next,
    inventory,
    following: new FollowedRuns(),
    sealed: new SealedSecrets(),
    arbiter: Identity.generate(),
    mint: Identity.generate().address,
    log: { info: vi.fn(), warn: vi.fn() },
    config: { verification: { p: 0, bondRatio: 1 }, verifySecret: new Uint8Array(32), rerunWaitMs: 1000 },
    artifacts: { has: () => false },
    ...extra,
  } as unknown as CoordinatorContext
  return { ctx, store, next, inventory }
}

const receiptOf = (exitCode: number) => ({ payload: { exitCode } }) as unknown as Job['receipt']

describe('verify hands on', () => {
  it('asks next.settle for every run of a decided family; the outvoted one is slashed', async () => {
    const { ctx, store, next, inventory } = ctxOf([
      row({
        id: 'job_a',
        state: 'verifying',
        spotCheck: true,
        provider: P1,
        settleOutcome: 'verified',
        receipt: receiptOf(0),
      }),
      row({
        id: 'job_ar1',
        parentId: 'job_a',
        role: 'replica',
        state: 'verifying',
        provider: P2,
        settleOutcome: 'failed_client',
        receipt: receiptOf(1),
      }),
      row({
        id: 'job_at1',
        parentId: 'job_a',
        role: 'tiebreak',
        state: 'verifying',
        provider: P3,
        settleOutcome: 'verified',
        receipt: receiptOf(0),
      }),
    ])
    await verifyFamily(ctx, 'job_a')
    expect(next.settle.mock.calls.map(([r]) => r.id).sort()).toEqual(['job_a', 'job_ar1', 'job_at1'])
    expect(store.jobs.get('job_ar1')).toMatchObject({
      state: 'settling',
      settleOutcome: 'caught',
      settleAction: 'slash',
    })
    expect(store.jobs.get('job_a')).toMatchObject({ state: 'settling', settleAction: 'release' })
    expect(store.jobs.get('job_a')?.verdict).toMatchObject({ verdict: 'decided', caught: [P2] })
    expect(inventory.recordOutcome).toHaveBeenCalledWith(P2, expect.objectContaining({ kind: 'caught' }))
    expect(inventory.recordOutcome).toHaveBeenCalledWith(P1, expect.objectContaining({ kind: 'verified' }))
    expect(next.place).not.toHaveBeenCalled()
  })

  it("asks next.place for a re-run once the job's own result is in, and settles nothing yet", async () => {
    const { ctx, next, store } = ctxOf([
      row({ id: 'job_b', state: 'verifying', spotCheck: true, provider: P1, settleOutcome: 'verified' }),
      row({ id: 'job_br1', parentId: 'job_b', role: 'replica', state: 'queued' }),
    ])
    await verifyFamily(ctx, 'job_b')
    expect(next.place).toHaveBeenCalledTimes(1)
    expect(next.settle).not.toHaveBeenCalled()
    expect(store.jobs.get('job_b')?.state).toBe('verifying')
  })
})

describe('lease-outcome hands on', () => {
  it('refunds a run lost by its provider, queues the settlement, and rules the provider out', async () => {
    const job = row({ id: 'job_c', state: 'running', provider: P1 })
    const { ctx, store, next, inventory } = ctxOf([job])
    await failRun(ctx, job, new KilnError('PEER_UNREACHABLE', 'the provider went away'))
    expect(store.jobs.get('job_c')).toMatchObject({
      state: 'settling',
      settleAction: 'refund_requeue',
      refundedToClient: 1000,
      excluded: [P1],
    })
    expect(next.settle).toHaveBeenCalledWith(expect.objectContaining({ id: 'job_c', attempt: 1 }))
    expect(inventory.recordOutcome).toHaveBeenCalledWith(P1, expect.objectContaining({ kind: 'failed' }))
    // A job nobody re-runs has no family to judge.
    expect(next.verify).not.toHaveBeenCalled()
  })

  it("asks next.verify for the family when a checked job's run fails for good", async () => {
    const job = row({ id: 'job_d', state: 'running', provider: P1, spotCheck: true, attempt: 3 })
    const { ctx, store, next } = ctxOf([job])
    await failRun(ctx, job, new KilnError('PEER_UNREACHABLE', 'gone again'))
    expect(store.jobs.get('job_d')).toMatchObject({ settleAction: 'refund', error: { kind: 'PEER_UNREACHABLE' } })
    expect(next.verify).toHaveBeenCalledWith('job_d')
  })
})

describe('settle hands on', () => {
  it('asks next.place once a refund-and-requeue is settled and the job is queued again', async () => {
    const { ctx, store, next } = ctxOf(
      [row({ id: 'job_e', state: 'settling', provider: P1, settleAction: 'refund_requeue' })],
      {
        escrow: { settlementStatus: async () => ({ exists: false, balance: 0 }) },
      },
    )
    expect(await settle(ctx, 'job_e')).toEqual({ done: true })
    expect(store.jobs.get('job_e')).toMatchObject({ state: 'queued', provider: null, settleAction: null })
    expect(next.place).toHaveBeenCalledTimes(1)
  })
})

/** A result stream that answers with one frame. */
const answering = (frame: unknown) => ({
  sendJson: vi.fn(async () => {}),
  nextJson: vi.fn(async () => frame),
  close: vi.fn(async () => {}),
})

describe('resume hands on', () => {
  const locked = () =>
    row({ id: 'job_f', state: 'running', provider: P1, multisig: P2, vault: P3 } as Partial<Job> &
      Pick<Job, 'id' | 'state'>)

  it("asks next.fail with the provider's answer when it has no result, as a value rather than a thrown error", async () => {
    const frame = { t: 'lost', error: { code: 'KILN_3001', kind: 'JOB_NOT_FOUND', message: 'no such lease' } }
    const { ctx, next } = ctxOf([locked()], { mesh: { open: async () => answering(frame) } })
    expect(await resumeRun(ctx, locked())).toBe('lost')
    const [, error] = next.fail.mock.calls[0] ?? []
    expect(isKilnError(error, 'PEER_UNREACHABLE') && error.message).toMatch(/no result: no such lease/)
    expect(ctx.following.has('job_f')).toBe(false)
  })

  it('hands nothing on while the provider says the run is still going', async () => {
    const { ctx, next } = ctxOf([locked()], { mesh: { open: async () => answering({ t: 'running' }) } })
    expect(await resumeRun(ctx, locked())).toBe('running')
    expect(next.fail).not.toHaveBeenCalled()
    expect(next.finish).not.toHaveBeenCalled()
  })

  it('leaves a run this process already follows alone', async () => {
    const open = vi.fn()
    const { ctx } = ctxOf([locked()], { mesh: { open } })
    ctx.following.claim('job_f')
    expect(await resumeRun(ctx, locked())).toBe('running')
    expect(open).not.toHaveBeenCalled()
  })
})

describe('reconcile hands on', () => {
  it('asks next.verify when a re-run nobody took is dropped, and next.fail for a run past its deadline', async () => {
    const now = 100_000
    const { ctx, store, next } = ctxOf([
      // Its own result came in 2 s ago: longer than a re-run may wait, too soon to judge it as a quiet family.
      row({ id: 'job_g', state: 'verifying', spotCheck: true, updatedAt: now - 2000 }),
      row({ id: 'job_gr1', parentId: 'job_g', role: 'replica', state: 'queued', createdAt: 0 }),
      row({ id: 'job_h', state: 'running', provider: P1, runDeadline: now - 1, updatedAt: 0 }),
    ])
    await reconcile(ctx, now)
    expect(store.jobs.get('job_gr1')?.state).toBe('cancelled')
    expect(next.verify.mock.calls).toEqual([['job_g']])
    expect(next.resume).toHaveBeenCalledWith(expect.objectContaining({ id: 'job_h' }))
    const [job, error] = next.fail.mock.calls[0] ?? []
    expect(job?.id).toBe('job_h')
    expect(isKilnError(error, 'PEER_UNREACHABLE') && error.context.deadline).toBe(now - 1)
  })
})

describe('the placement book', () => {
  it('never overlaps passes, and runs once more for a pass asked for during one', async () => {
    const book = new PlacementBook({ match: vi.fn(), assign: vi.fn(() => true), release: vi.fn() })
    let inside = 0
    let most = 0
    let runs = 0
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    const once = async () => {
      runs++
      most = Math.max(most, ++inside)
      if (runs === 1) await gate
      inside--
    }
    const first = book.pass(once)
    await book.pass(once)
    await book.pass(once)
    release()
    await first
    expect(runs).toBe(2)
    expect(most).toBe(1)
  })

  it('mirrors the placements in the database in the engine: new ones assigned, ended ones released', () => {
    const providers = { match: vi.fn(), assign: vi.fn(() => true), release: vi.fn() }
    const book = new PlacementBook(providers)
    const spec = {} as Job['spec']
    book.mirror([{ id: 'j1', spec, provider: P1 }])
    book.mirror([
      { id: 'j1', spec, provider: P1 },
      { id: 'j2', spec, provider: P2 as Address },
    ])
    expect(providers.assign.mock.calls.map((c) => (c as unknown[])[1])).toEqual([P1, P2])
    book.mirror([{ id: 'j2', spec, provider: P2 }])
    expect(providers.release).toHaveBeenCalledWith('j1')
  })

  it('tells whether a waiting reason is news, and keeps positions and the run length', () => {
    const book = new PlacementBook({ match: vi.fn(), assign: vi.fn(), release: vi.fn() })
    expect(book.wait('j', 'no provider is online')).toBe(true)
    expect(book.wait('j', 'no provider is online')).toBe(false)
    expect(book.waitingReason('j')).toBe('no provider is online')
    book.unwait('j')
    expect(book.waitingReason('j')).toBeNull()
    book.ordered(['a', 'b'])
    expect([book.positionOf('b'), book.positionOf('c')]).toEqual([2, null])
    book.ran(10_000)
    expect(book.avgRunMs).toBe(50_000)
  })
})
