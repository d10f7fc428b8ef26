import { KilnError } from '@kiln/protocol'
import { failRun } from './lease-outcome.ts'
import { resumeRun } from './resume.ts'
import type { CoordinatorContext } from './types.ts'

/** A run nobody here follows is asked about once it has been quiet this long. */
const QUIET_MS = 5_000

/**
 * Resolves runs no process here is following (the coordinator restarted, or the one that
 * held the stream died): their result is fetched from the provider; one past its deadline
 * with no result is refunded and placed again, with the exact reason recorded.
 */
export async function reconcile(ctx: CoordinatorContext, now = Date.now()): Promise<number> {
  let resolved = 0
  for (const job of await ctx.store.list({ states: ['locked', 'running'], limit: 1000 })) {
    if (ctx.active.has(job.id) || now - job.updatedAt < QUIET_MS) continue
    const outcome = await resumeRun(ctx, job)
    if (outcome === 'finished' || outcome === 'lost') {
      resolved++
      continue
    }
    if (job.runDeadline !== null && job.runDeadline <= now) {
      const reason = `no result by the run deadline (${new Date(job.runDeadline).toISOString()}); the provider is presumed lost`
      ctx.log.warn({ jobId: job.id, provider: job.provider }, reason)
      await failRun(ctx, job, new KilnError('PEER_UNREACHABLE', reason, { deadline: job.runDeadline }))
      resolved++
    }
  }
  return resolved
}
