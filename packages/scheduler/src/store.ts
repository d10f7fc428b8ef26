import {
  and,
  asc,
  desc,
  eq,
  gt,
  inArray,
  isNotNull,
  isNull,
  jobEvents,
  jobLogs,
  jobs,
  or,
  sql,
  type Db,
} from '@kiln/db'
import { KilnError, randomHex, type JobState } from '@kiln/protocol'
import { canTransition } from './states.ts'

export type Job = typeof jobs.$inferSelect
export type NewJob = typeof jobs.$inferInsert
export type JobPatch = Partial<Omit<Job, 'id' | 'state' | 'version' | 'createdAt'>>

/** Sortable, unguessable job ids: time prefix for order, randomness for uniqueness. */
export function newJobId(now = Date.now()): string {
  return `job_${now.toString(36).padStart(9, '0')}${randomHex(8)}`
}

export interface JobStore {
  /** A new queued job, with its hidden re-runs (spot checks) in the same transaction. */
  create(
    job: Omit<NewJob, 'state' | 'version' | 'createdAt' | 'updatedAt'>,
    runs?: Omit<NewJob, 'state' | 'version' | 'createdAt' | 'updatedAt'>[],
  ): Promise<Job>
  /** Adds a run (a tie-break) to a job; undefined when one with this id exists already. */
  addRun(run: Omit<NewJob, 'state' | 'version' | 'createdAt' | 'updatedAt'>, reason: string): Promise<Job | undefined>
  /** A job and its runs (re-runs, tie-breaks), the job first. */
  family(rootId: string): Promise<Job[]>
  get(id: string): Promise<Job | undefined>
  mustGet(id: string): Promise<Job>
  /**
   * Moves a job from one of `from` to `to`, atomically with its event record. Returns the
   * updated job, or undefined when the job was not in one of `from` (someone else already
   * moved it): callers treat that as "already done", which makes every step idempotent.
   */
  transition(
    id: string,
    from: readonly JobState[],
    to: JobState,
    reason: string,
    patch?: JobPatch,
    detail?: Record<string, unknown>,
  ): Promise<Job | undefined>
  update(id: string, patch: JobPatch): Promise<void>
  /** Newest first, or oldest first with `oldestFirst`. Jobs only; with `runs`, hidden re-runs too; with runs 'only', just those. */
  list(opts?: {
    states?: JobState[]
    client?: string
    limit?: number
    oldestFirst?: boolean
    runs?: boolean | 'only'
  }): Promise<Job[]>
  events(id: string): Promise<(typeof jobEvents.$inferSelect)[]>
  appendLogs(id: string, firstSeq: number, chunks: { stream: string; text: string }[]): Promise<void>
  logs(id: string, afterSeq: number, limit?: number): Promise<(typeof jobLogs.$inferSelect)[]>
  /** Whether one of `client`'s jobs or runs delivered the output `digest` (outputs are their owner's). */
  ownsOutput(client: string, digest: string): Promise<boolean>
  /** Every queued job, just what ordering needs (cheap even for a long queue); parked ones say since when. */
  queued(): Promise<
    {
      id: string
      parentId: string | null
      client: string
      priority: number
      createdAt: number
      parkedAt: number | null
    }[]
  >
  /**
   * The owner is back: job `rootId` and its runs are placed again, their lapse count starting
   * over. Returns the runs that were parked (each gets an event); cheap when none is.
   */
  unpark(rootId: string, reason: string): Promise<string[]>
  /** What `client`'s jobs not yet locked may still cost: their funds have not left the wallet. */
  reservedFor(client: string): Promise<number>
  /**
   * Places a queued job on `provider` if that provider has fewer than `maxActive` jobs placed
   * and unfinished. Serialised per provider with an advisory lock, so two coordinator
   * processes can never both place on the last free slot.
   */
  place(
    id: string,
    provider: string,
    maxActive: number,
    reason: string,
    patch: JobPatch,
    detail?: Record<string, unknown>,
  ): Promise<'placed' | 'busy' | 'moved'>
  /** Placed and unfinished jobs (matched, locked, running), with what they hold. */
  active(): Promise<Pick<Job, 'id' | 'provider' | 'spec'>[]>
  /** Jobs placed on each provider and not finished running, across every coordinator process. */
  activeByProvider(): Promise<Map<string, number>>
}

export function createJobStore(db: Db): JobStore {
  const get = async (id: string) => (await db.select().from(jobs).where(eq(jobs.id, id)).limit(1))[0]
  return {
    async create(job, runs = []) {
      const now = Date.now()
      return db.transaction(async (tx) => {
        const [row] = await tx
          .insert(jobs)
          .values({ ...job, state: 'queued', version: 0, createdAt: now, updatedAt: now })
          .returning()
        await tx.insert(jobEvents).values({ jobId: job.id, from: null, to: 'queued', reason: 'submitted', at: now })
        for (const r of runs) {
          await tx.insert(jobs).values({ ...r, state: 'queued', version: 0, createdAt: now, updatedAt: now })
          await tx
            .insert(jobEvents)
            .values({ jobId: r.id, from: null, to: 'queued', reason: `${r.role ?? 'run'} of ${job.id}`, at: now })
        }
        if (!row) throw new Error('insert returned no row')
        return row
      })
    },
    async addRun(run, reason) {
      const now = Date.now()
      return db.transaction(async (tx) => {
        const [row] = await tx
          .insert(jobs)
          .values({ ...run, state: 'queued', version: 0, createdAt: now, updatedAt: now })
          .onConflictDoNothing()
          .returning()
        if (row) await tx.insert(jobEvents).values({ jobId: run.id, from: null, to: 'queued', reason, at: now })
        return row
      })
    },
    async family(rootId) {
      return db
        .select()
        .from(jobs)
        .where(or(eq(jobs.id, rootId), eq(jobs.parentId, rootId)))
        .orderBy(asc(jobs.createdAt), asc(jobs.id))
    },
    get,
    async mustGet(id) {
      const job = await get(id)
      if (!job) throw new KilnError('JOB_NOT_FOUND', `no job ${id}`, { jobId: id })
      return job
    },
    async transition(id, from, to, reason, patch = {}, detail) {
      // An illegal source is a bug in the caller, not a lost race: fail loudly, never skip it.
      const illegal = from.filter((f) => !canTransition(f, to))
      if (illegal.length > 0 || from.length === 0)
        throw new Error(`no legal transition from ${illegal.join('|') || '(none)'} to ${to}`)
      const allowed = from
      const now = Date.now()
      return db.transaction(async (tx) => {
        const [prev] = await tx
          .select({ state: jobs.state, version: jobs.version })
          .from(jobs)
          .where(and(eq(jobs.id, id), inArray(jobs.state, allowed)))
          .for('update')
        if (!prev) return undefined
        const [row] = await tx
          .update(jobs)
          .set({ ...patch, state: to, version: prev.version + 1, updatedAt: now })
          .where(and(eq(jobs.id, id), eq(jobs.version, prev.version)))
          .returning()
        if (!row) return undefined
        await tx.insert(jobEvents).values({ jobId: id, from: prev.state, to, reason, detail, at: now })
        return row
      })
    },
    async update(id, patch) {
      await db
        .update(jobs)
        .set({ ...patch, updatedAt: Date.now() })
        .where(eq(jobs.id, id))
    },
    async list(opts = {}) {
      const conds = []
      if (opts.states?.length) conds.push(inArray(jobs.state, opts.states))
      if (opts.client) conds.push(eq(jobs.client, opts.client))
      if (!opts.runs) conds.push(isNull(jobs.parentId))
      else if (opts.runs === 'only') conds.push(isNotNull(jobs.parentId))
      return db
        .select()
        .from(jobs)
        .where(conds.length ? and(...conds) : undefined)
        .orderBy(opts.oldestFirst ? asc(jobs.createdAt) : desc(jobs.createdAt))
        .limit(opts.limit ?? 100)
    },
    async ownsOutput(client, digest) {
      return (
        (
          await db
            .select({ id: jobs.id })
            .from(jobs)
            .where(and(eq(jobs.client, client), eq(jobs.outputDigest, digest)))
            .limit(1)
        ).length > 0
      )
    },
    async events(id) {
      return db.select().from(jobEvents).where(eq(jobEvents.jobId, id)).orderBy(asc(jobEvents.id))
    },
    async appendLogs(id, firstSeq, chunks) {
      if (chunks.length === 0) return
      const now = Date.now()
      // A program may print anything; Postgres text cannot hold a NUL, so it is shown as U+FFFD.
      await db
        .insert(jobLogs)
        .values(
          chunks.map((c, i) => ({
            jobId: id,
            seq: firstSeq + i,
            stream: c.stream,
            text: c.text.replaceAll('\u0000', '\uFFFD'),
            at: now,
          })),
        )
        .onConflictDoNothing()
    },
    async queued() {
      return db
        .select({
          id: jobs.id,
          parentId: jobs.parentId,
          client: jobs.client,
          priority: jobs.priority,
          createdAt: jobs.createdAt,
          parkedAt: jobs.parkedAt,
        })
        .from(jobs)
        .where(eq(jobs.state, 'queued'))
    },
    async unpark(rootId, reason) {
      const now = Date.now()
      return db.transaction(async (tx) => {
        const family = or(eq(jobs.id, rootId), eq(jobs.parentId, rootId))
        const parked = await tx
          .select({ id: jobs.id, state: jobs.state })
          .from(jobs)
          .where(and(family, isNotNull(jobs.parkedAt)))
          .for('update')
        await tx
          .update(jobs)
          .set({
            lapses: 0,
            parkedAt: null,
            updatedAt: sql`case when ${jobs.parkedAt} is null then ${jobs.updatedAt} else ${now} end`,
          })
          .where(and(family, or(gt(jobs.lapses, 0), isNotNull(jobs.parkedAt))))
        for (const p of parked)
          await tx.insert(jobEvents).values({ jobId: p.id, from: p.state, to: p.state, reason, at: now })
        return parked.map((p) => p.id)
      })
    },
    async reservedFor(client) {
      const [row] = await db
        .select({ total: sql<string>`coalesce(sum(${jobs.maxCost}), 0)` })
        .from(jobs)
        .where(and(eq(jobs.client, client), inArray(jobs.state, ['queued', 'matched'])))
      return Number(row?.total ?? 0)
    },
    async place(id, provider, maxActive, reason, patch, detail) {
      const now = Date.now()
      return db.transaction(async (tx) => {
        await tx.execute(sql`select pg_advisory_xact_lock(hashtext(${provider}))`)
        const [busy] = await tx
          .select({ n: sql<string>`count(*)` })
          .from(jobs)
          .where(and(eq(jobs.provider, provider), inArray(jobs.state, ['matched', 'locked', 'running'])))
        if (Number(busy?.n ?? 0) >= maxActive) return 'busy' as const
        const [row] = await tx
          .update(jobs)
          .set({ ...patch, provider, state: 'matched', version: sql`${jobs.version} + 1`, updatedAt: now })
          .where(and(eq(jobs.id, id), eq(jobs.state, 'queued')))
          .returning({ id: jobs.id })
        if (!row) return 'moved' as const
        await tx.insert(jobEvents).values({ jobId: id, from: 'queued', to: 'matched', reason, detail, at: now })
        return 'placed' as const
      })
    },
    async active() {
      return db
        .select({ id: jobs.id, provider: jobs.provider, spec: jobs.spec })
        .from(jobs)
        .where(inArray(jobs.state, ['matched', 'locked', 'running']))
    },
    async activeByProvider() {
      const rows = await db
        .select({ provider: jobs.provider, n: sql<string>`count(*)` })
        .from(jobs)
        .where(inArray(jobs.state, ['matched', 'locked', 'running']))
        .groupBy(jobs.provider)
      return new Map(rows.filter((r) => r.provider).map((r) => [r.provider as string, Number(r.n)]))
    },
    async logs(id, afterSeq, limit = 500) {
      return db
        .select()
        .from(jobLogs)
        .where(and(eq(jobLogs.jobId, id), gt(jobLogs.seq, afterSeq)))
        .orderBy(asc(jobLogs.seq))
        .limit(limit)
    },
  }
}
