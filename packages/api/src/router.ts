import { z } from 'zod'
import type { TRPCRouterRecord } from '@trpc/server'
import { jobId, plainText, requireReader, type Address } from '@kiln/protocol'
import { procedure, router, type RequestContext } from './trpc.ts'

const signed = z.object({ envelope: z.unknown() })

/**
 * A job's details, logs, runs and outputs are its owner's: a read that names no reader (no
 * read token) is refused here, before the marketplace is asked; one naming another is refused there.
 */
const readerFor = (ctx: RequestContext, job: string): Address =>
  requireReader(ctx.reader(), `job ${job}'s details, logs, runs and outputs`, { jobId: job })

const jobsRouter = {
  submit: procedure.input(signed).mutation(({ ctx, input }) => ctx.market.submit(input.envelope)),
  lock: procedure.input(signed).mutation(({ ctx, input }) => ctx.market.lock(input.envelope)),
  cancel: procedure.input(signed).mutation(({ ctx, input }) => ctx.market.cancel(input.envelope)),
  cosign: procedure.input(signed).mutation(({ ctx, input }) => ctx.market.cosign(input.envelope)),
  /** Signed, as a mutation: a read token alone does not show the re-runs. */
  runs: procedure.input(signed).mutation(({ ctx, input }) => ctx.market.runs(input.envelope)),
  /** The owner's whole view of its job (read token required): spec, lock, output, history. */
  get: procedure
    .input(z.object({ jobId, watch: z.boolean().optional() }))
    .query(({ ctx, input }) =>
      ctx.market.ownedJob({ jobId: input.jobId, reader: readerFor(ctx, input.jobId), watch: input.watch ?? false }),
    ),
  /** What a job printed, for its owner only (read token required). */
  logs: procedure
    .input(
      z.object({
        jobId,
        after: z.number().int().min(-1).default(-1),
        limit: z.number().int().min(1).max(1000).default(500),
      }),
    )
    .query(({ ctx, input }) => ctx.market.logs({ ...input, reader: readerFor(ctx, input.jobId) })),
  /** Anyone: one job as a market explorer sees it, with its state timeline (times only, no reasons). */
  public: procedure.input(z.object({ jobId })).query(({ ctx, input }) => ctx.market.publicJob(input.jobId)),
  /** Anyone: recent jobs as a market explorer sees them. */
  list: procedure
    .input(
      z
        .object({ client: plainText().max(64).optional(), limit: z.number().int().min(1).max(500).default(50) })
        .default({ limit: 50 }),
    )
    .query(({ ctx, input }) => ctx.market.list(input)),
} satisfies TRPCRouterRecord

const networkRouter = {
  info: procedure.query(({ ctx }) => ctx.market.info()),
  providers: procedure.query(({ ctx }) => ctx.market.providers()),
} satisfies TRPCRouterRecord

export const appRouter = router({ jobs: jobsRouter, network: networkRouter })
export type AppRouter = typeof appRouter
