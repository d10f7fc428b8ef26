import { z } from 'zod'
import type { TRPCRouterRecord } from '@trpc/server'
import { cancelJob, confirmLock, cosignRefund, jobRuns, publicJob, submitJob, viewOf } from '../coordinator/index.ts'
import { jobId } from '@kiln/protocol'
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
  get: procedure.input(z.object({ jobId })).query(async ({ ctx, input }) => {
    const c = ctx.coordinator
    const job = await publicJob(c, input.jobId)
    const events = await c.store.events(job.id)
    return { ...viewOf(c, job), events: events.map((e) => ({ from: e.from, to: e.to, reason: e.reason, at: e.at })) }
  }),
  logs: procedure.input(z.object({ jobId, after: z.number().int().min(-1).default(-1), limit: z.number().int().min(1).max(1000).default(500) }))
    .query(async ({ ctx, input }) => {
      const rows = await ctx.coordinator.store.logs((await publicJob(ctx.coordinator, input.jobId)).id, input.after, input.limit)
      return rows.map((r) => ({ seq: r.seq, stream: r.stream as 'stdout' | 'stderr', text: r.text, at: r.at }))
    }),
  list: procedure.input(z.object({ client: z.string().optional(), limit: z.number().int().min(1).max(500).default(50) }).default({ limit: 50 }))
    .query(async ({ ctx, input }) => (await ctx.coordinator.store.list(input)).map((j) => viewOf(ctx.coordinator, j))),
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
      /** Below the marketplace's reputation floor: online, but given no work. */
      suspended: reputation < (ctx.coordinator.config.minReputation ?? 0),
    }
  })),
} satisfies TRPCRouterRecord

export const appRouter = router({ jobs: jobsRouter, network: networkRouter })
export type AppRouter = typeof appRouter
