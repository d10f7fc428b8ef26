import { isKilnError, Kind, Protocol, seal, type Address } from '@kiln/protocol'
import type { Job } from '@kiln/scheduler'
import { follow, leaseOf } from './stream.ts'
import type { CoordinatorContext, ResumeOutcome } from './types.ts'

/**
 * Fetches the result of a run whose job stream this coordinator does not hold (it restarted,
 * or another coordinator died): the provider kept its output and receipt. A run the provider
 * never had or lost is refunded and placed again.
 */
export async function resumeRun(ctx: CoordinatorContext, job: Job): Promise<ResumeOutcome> {
  const provider = job.provider as Address
  if (!ctx.following.claim(job.id)) return 'running'
  try {
    const addrs = ctx.inventory.get(provider)?.addrs
    const ch = await ctx.mesh.open(provider, Protocol.result, addrs ? { addrs } : {}).catch(() => undefined)
    if (!ch) return 'unreachable'
    try {
      const lease = leaseOf(ctx, job)
      await ch.sendJson({ envelope: seal(ctx.arbiter, Kind.resultRequest, { jobId: lease.jobId }, { ttlMs: 60_000 }) })
      const end = await follow(ctx, ch, lease, job.id)
      if (end.kind === 'running') return 'running'
      if (end.kind === 'lost') {
        await ctx.next.fail(job, end.error)
        return 'lost'
      }
      await ch.sendJson({ t: 'ack' }).catch(() => {})
      ctx.log.info({ jobId: job.id, provider }, 'result recovered from the provider')
      await ctx.next.finish(job, end.receipt)
      return 'finished'
    } catch (e) {
      if (isKilnError(e) && e.kind !== 'PEER_UNREACHABLE') {
        // A receipt that does not check out (bad signature, digest mismatch) ends the run.
        await ctx.next.fail(job, e)
        return 'lost'
      }
      return 'unreachable'
    } finally {
      await ch.close().catch(() => {})
    }
  } finally {
    ctx.following.release(job.id)
  }
}
