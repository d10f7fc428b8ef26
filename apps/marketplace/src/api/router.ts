import { z } from 'zod'
import type { TRPCRouterRecord } from '@trpc/server'
import { cancelJob, confirmLock, cosignRefund, jobRuns, ownedJob, ownerReturned, publicJob, publicView, submitJob, viewOf } from '../coordinator/index.ts'
import { jobId, plainText } from '@kiln/protocol'
import { procedure, router } from './trpc.ts'

const signed = z.object({ envelope: z.unknown() })

const jobsRouter = {
  /** Signed by the client: a job spec. Validated, balance-checked, stored, queued. */
  submit: procedure.input(signed).mutation(({ ctx, input }) => submitJob(ctx.coordinator, input.envelope)),
  /** Signed by the client: "I locked the funds in this transaction". */
  lock: procedure.input(signed).mutation(({ ctx, input }) => confirmLock(ctx.coordinator, input.envelope)),
  cancel: procedure.input(signed).mutation(({ ctx, input }) => cancelJob(ctx.coordinator, input.envelope)),
  /** Signed by the client: its co-signature of a refund the provider could not co-sign. */
  cosign: procedure.input(signed).mutation(({ ctx, input }) => cosignRefund(ctx.coordinator, input.envelope)),
  /** Signed by the client: every run of its job (spot-check re-runs are shown to the owner only). */
  runs: procedure.input(signed).mutation(({ ctx, input }) => jobRuns(ctx.coordinator, input.envelope)),
  /**
   * The owner's whole view of its job (read token required): spec, lock, output, history.
   * `watch`: the owner is following the job (kiln watch), so a job parked for want of its lock
   * is placed again; a mere look (kiln status) leaves it parked.
   */
  get: procedure.input(z.object({ jobId, watch: z.boolean().optional() })).query(async ({ ctx, input }) => {
    const c = ctx.coordinator
    let job = await ownedJob(c, input.jobId, ctx.reader())
    if (input.watch && (await ownerReturned(c, job.id))) job = await c.store.mustGet(job.id)
    const events = await c.store.events(job.id)
    return { ...viewOf(c, job), events: events.map((e) => ({ from: e.from, to: e.to, reason: e.reason, at: e.at })) }
  }),
  /** What a job printed, for its owner only (read token required). */
  logs: procedure.input(z.object({ jobId, after: z.number().int().min(-1).default(-1), limit: z.number().int().min(1).max(1000).default(500) }))
    .query(async ({ ctx, input }) => {
      const rows = await ctx.coordinator.store.logs((await ownedJob(ctx.coordinator, input.jobId, ctx.reader())).id, input.after, input.limit)
      return rows.map((r) => ({ seq: r.seq, stream: r.stream as 'stdout' | 'stderr', text: r.text, at: r.at }))
    }),
  /** Anyone: one job as a market explorer sees it, with its state timeline (times only, no reasons). */
  public: procedure.input(z.object({ jobId })).query(async ({ ctx, input }) => {
    const job = await publicJob(ctx.coordinator, input.jobId)
    const events = await ctx.coordinator.store.events(job.id)
    return { ...publicView(job), events: events.map((e) => ({ from: e.from, to: e.to, at: e.at })) }
  }),
  /** Anyone: recent jobs as a market explorer sees them. */
  list: procedure.input(z.object({ client: plainText().max(64).optional(), limit: z.number().int().min(1).max(500).default(50) }).default({ limit: 50 }))
    .query(async ({ ctx, input }) => (await ctx.coordinator.store.list(input)).map(publicView)),
} satisfies TRPCRouterRecord

const networkRouter = {
  /** What a client needs to talk to this marketplace: arbiter, mint, ledger, mesh. */
  info: procedure.query(({ ctx }) => ctx.info),
  providers: procedure.query(({ ctx }) => ctx.coordinator.inventory.list().map((p) => {
    const reputation = ctx.coordinator.reputation.get(p.address) ?? 0.5
    return {
      address: p.address, region: p.advert.region, pricePerHour: p.advert.pricePerHour, available: p.advert.available,
      reason: p.advert.reason ?? null, hardware: p.advert.hardware, free: p.advert.free, version: p.advert.version,
      lastSeen: p.lastSeen, expiresAt: p.expiresAt, reputation,
      /** Takes jobs that ask for network access (internet only); older adverts do not say, and take none. */
      network: p.advert.network === true,
      /** Below the marketplace's reputation floor: online, but given no work. */
      suspended: reputation < (ctx.coordinator.config.minReputation ?? 0),
    }
  })),
} satisfies TRPCRouterRecord

export const appRouter = router({ jobs: jobsRouter, network: networkRouter })
export type AppRouter = typeof appRouter
