import { isKilnError, Kind, Protocol, seal, type Address } from '@kiln/protocol'
import type { Job } from '@kiln/scheduler'
import { finishRun, follow, leaseOf } from './lease.ts'
import { failRun } from './lease-outcome.ts'
import type { CoordinatorContext } from './types.ts'

export type ResumeOutcome = 'finished' | 'running' | 'lost' | 'unreachable'

/**
 * Fetches the result of a run whose job stream this coordinator does not hold (it restarted,
 * or another coordinator died): the provider kept its output and receipt. A run the provider
 * never had or lost is refunded and placed again.
 */
export async function resumeRun(ctx: CoordinatorContext, job: Job): Promise<ResumeOutcome> {
  const provider = job.provider as Address
  if (ctx.active.has(job.id)) return 'running'
  ctx.active.add(job.id)
  try {
    const addrs = ctx.inventory.get(provider)?.addrs
    const ch = await ctx.mesh.open(provider, Protocol.result, addrs ? { addrs } : {}).catch(() => undefined)
    if (!ch) return 'unreachable'
    try {
      const lease = leaseOf(ctx, job)
      await ch.sendJson({ envelope: seal(ctx.arbiter, Kind.resultRequest, { jobId: lease.jobId }, { ttlMs: 60_000 }) })
      const receipt = await follow(ctx, ch, lease, job.id)
      await ch.sendJson({ t: 'ack' }).catch(() => {})
      ctx.log.info({ jobId: job.id, provider }, 'result recovered from the provider')
      await finishRun(ctx, job, receipt)
      return 'finished'
    } catch (e) {
      if (isKilnError(e, 'JOB_WRONG_STATE') && e.context.running) return 'running'
      if (isKilnError(e, 'PEER_UNREACHABLE') && e.context.lost) {
        await failRun(ctx, job, e)
        return 'lost'
      }
      if (isKilnError(e) && e.kind !== 'PEER_UNREACHABLE') {
        // A receipt that does not check out (bad signature, digest mismatch) ends the run.
        await failRun(ctx, job, e)
        return 'lost'
      }
      return 'unreachable'
    } finally {
      await ch.close().catch(() => {})
    }
  } finally {
    ctx.active.delete(job.id)
  }
}
