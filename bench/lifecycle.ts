/**
 * `npm run bench:lifecycle`: the coordinator's ceiling without Docker or a chain. Trivial jobs
 * go through every state (queued → matched → locked → running → verifying → settling → done)
 * with the real parts: a private redis-server, BullMQ lifecycle tasks (dispatch, lock-timeout,
 * settle: three per job, as in the coordinator) and idempotent transitions in the embedded
 * Postgres (PGlite, in memory; DATABASE_URL for a server). It prints jobs and transitions per
 * second, and how much of the wall time the database and the queue were busy.
 * BENCH_JOBS (default 2000) and BENCH_CONCURRENCY (worker concurrency, default 8) override.
 */
import { openDb } from '@kiln/db'
import {
  createJobStore,
  createLifecycleQueues,
  newJobId,
  type LifecycleHandlers,
  type TaskOutcome,
} from '@kiln/scheduler'
import { JobSpec, type Envelope } from '@kiln/protocol'
import { startRedis } from '../test/support/redis.ts'

const JOBS = Number(process.env.BENCH_JOBS ?? 2000)
// The coordinator runs its lifecycle worker at the default concurrency of createLifecycleQueues (8).
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8)
/** Submissions in flight at once, like many API requests arriving together. */
const SUBMITTERS = 20
const out = (line: string) => process.stdout.write(`${line}\n`)

/**
 * Busy time of one resource: wall time during which at least one call to it was in flight.
 * Calls overlap (the worker runs many tasks at once), so a plain sum of latencies would overcount.
 */
function busyMeter() {
  let inFlight = 0
  let since = 0
  let busyMs = 0
  let calls = 0
  let latencyMs = 0
  return {
    async time<T>(p: () => Promise<T>): Promise<T> {
      const start = performance.now()
      if (inFlight++ === 0) since = start
      try {
        return await p()
      } finally {
        const end = performance.now()
        calls++
        latencyMs += end - start
        if (--inFlight === 0) busyMs += end - since
      }
    },
    get busyMs() {
      return busyMs
    },
    get calls() {
      return calls
    },
    get meanMs() {
      return calls ? latencyMs / calls : 0
    },
  }
}

const redis = await startRedis()
const dbHandle = await openDb(process.env.DATABASE_URL ? { databaseUrl: process.env.DATABASE_URL } : {})
const store = createJobStore(dbHandle.db)
const errors: string[] = []
const queues = createLifecycleQueues({
  connection: { host: '127.0.0.1', port: redis.port },
  prefix: 'bench',
  concurrency: CONCURRENCY,
  onError: (task, jobId, err) => {
    if (errors.length < 5) errors.push(`${task} ${jobId}: ${String(err)}`)
  },
})
const db = busyMeter()
const queue = busyMeter()
let transitions = 0
let finished = 0
let allDone!: () => void
const done = new Promise<void>((resolve) => {
  allDone = resolve
})

/** One store transition; a lost race (undefined) would mean a task ran twice, which must not happen here. */
async function step(
  jobId: string,
  from: 'queued' | 'matched' | 'locked' | 'running' | 'verifying' | 'settling',
  to: Parameters<typeof store.transition>[2],
  patch = {},
) {
  const row = await db.time(() => store.transition(jobId, [from], to, `bench ${from}→${to}`, patch))
  if (!row) throw new Error(`${jobId}: ${from}→${to} found the job elsewhere`)
  transitions++
}

const ok: TaskOutcome = { done: true }
const handlers: LifecycleHandlers = {
  // As in the coordinator: placing makes the job matched and arms the lock window.
  async dispatch(jobId) {
    await step(jobId, 'queued', 'matched', {
      provider: 'bench-provider',
      attempt: 1,
      pricePerHour: 1000,
      lockAmount: 10,
    })
    await queue.time(() => queues.enqueue('lock-timeout', jobId, { key: '1' }))
    return ok
  },
  // Funds found: locked, and the lease starts the run.
  async 'lock-timeout'(jobId) {
    await step(jobId, 'matched', 'locked')
    await step(jobId, 'locked', 'running', { startedAt: Date.now() })
    await queue.time(() => queues.enqueue('settle', jobId))
    return ok
  },
  // The receipt came back: verify, settle, done.
  async settle(jobId) {
    await step(jobId, 'running', 'verifying')
    await step(jobId, 'verifying', 'settling', { settleAction: 'release' })
    await step(jobId, 'settling', 'done', { endedAt: Date.now(), paidToProvider: 1, refundedToClient: 9 })
    if (++finished === JOBS) allDone()
    return ok
  },
}

const spec = JobSpec.parse({
  image: 'kiln/noop:1',
  maxPricePerHour: 1000,
  timeoutSec: 60,
  resources: { cpu: 1, memoryMb: 64 },
})
try {
  await queues.start(handlers)
  out(
    `lifecycle bench: ${JOBS} jobs, worker concurrency ${CONCURRENCY}, ${dbHandle.kind}, redis-server on :${redis.port}`,
  )
  const t0 = performance.now()
  let next = 0
  // Submitting is part of the work: insert as queued (with its event row), then queue the dispatch.
  await Promise.all(
    Array.from({ length: SUBMITTERS }, async () => {
      while (next < JOBS) {
        next++
        const id = newJobId()
        await db.time(() =>
          store.create({ id, client: 'bench-client', spec, submitEnvelope: {} as Envelope, maxCost: 10 }),
        )
        await queue.time(() => queues.enqueue('dispatch', id))
      }
    }),
  )
  const submittedMs = performance.now() - t0
  await Promise.race([
    done,
    new Promise((_, reject) =>
      setTimeout(
        () => reject(new Error(`timed out with ${finished}/${JOBS} done; ${errors.join('; ')}`)),
        10 * 60_000,
      ).unref(),
    ),
  ])
  const wallMs = performance.now() - t0
  const events = await store.events((await store.list({ states: ['done'], limit: 1 }))[0]!.id)
  if (events.length !== 7) throw new Error(`a done job has ${events.length} events, expected 7`)
  const s = wallMs / 1000
  out(
    `  ${JOBS} jobs done in ${fmt(s, 2)} s (all submitted after ${fmt(submittedMs / 1000, 2)} s); each: 1 insert + 6 transitions, 3 BullMQ tasks`,
  )
  out(
    `  database: ${db.calls} calls, mean ${fmt(db.meanMs, 2)} ms, busy ${fmt((100 * db.busyMs) / wallMs, 0)}% of the wall time`,
  )
  out(
    `  queue:    ${queue.calls} enqueues, mean ${fmt(queue.meanMs, 2)} ms, busy ${fmt((100 * queue.busyMs) / wallMs, 0)}% of the wall time`,
  )
  out(`  tasks_per_s=${fmt((3 * JOBS) / s)}${errors.length ? `; task errors: ${errors.join('; ')}` : ''}`)
  out('')
  out(`lifecycle: jobs_per_s=${fmt(JOBS / s)} transitions_per_s=${fmt(transitions / s)}`)
} finally {
  await queues.stop()
  await dbHandle.close()
  await redis.stop()
}

function fmt(n: number, digits = 0): string {
  return n.toFixed(digits)
}
