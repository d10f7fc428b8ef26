import { KilnError } from '@kiln/protocol'
import { failRun } from './lease-outcome.ts'
import type { CoordinatorContext } from './types.ts'

/**
 * Resolves what is stuck past its deadline: a locked or running job with no result that no
 * process is following (its provider vanished, or the coordinator restarted) is refunded and
 * placed again, with the exact reason recorded.
 */
export async function reconcile(ctx: CoordinatorContext, now = Date.now()): Promise<number> {
  let resolved = 0
  for (const job of await ctx.store.list({ states: ['locked', 'running'], limit: 1000 })) {
    if (ctx.active.has(job.id) || job.runDeadline === null || job.runDeadline > now) continue
    const reason = `no result by the run deadline (${new Date(job.runDeadline).toISOString()}); the provider is presumed lost`
    ctx.log.warn({ jobId: job.id, provider: job.provider }, reason)
    await failRun(ctx, job, new KilnError('PEER_UNREACHABLE', reason, { deadline: job.runDeadline }))
    resolved++
  }
  return resolved
}
