import { KilnError } from '@kiln/protocol'
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
  // A re-run no independent provider took in time is dropped: the job settles on its own run.
  for (const run of await ctx.store.list({ states: ['queued'], limit: 1000, runs: 'only', oldestFirst: true })) {
    if (!run.parentId) continue
    // The clock starts when there is something to check: the job's own result.
    const root = await ctx.store.get(run.parentId)
    if (root?.state !== 'verifying' || now - Math.max(run.createdAt, root.updatedAt) < ctx.config.rerunWaitMs) continue
    const dropped = await ctx.store.transition(
      run.id,
      ['queued'],
      'cancelled',
      `no independent provider took this ${run.role} within ${Math.round(ctx.config.rerunWaitMs / 1000)} s`,
    )
    if (dropped) {
      ctx.log.warn({ jobId: run.parentId, run: run.id }, 'spot-check run dropped: no independent provider')
      await ctx.next.verify(run.parentId)
    }
  }
  // A family whose last run ended while its coordinator went down is judged here.
  // Each family once, however many of its runs wait.
  const families = new Set<string>()
  for (const job of await ctx.store.list({ states: ['verifying'], limit: 1000, runs: true })) {
    if (now - job.updatedAt >= QUIET_MS) families.add(job.parentId ?? job.id)
  }
  for (const root of families) await ctx.next.verify(root)
  for (const job of await ctx.store.list({ states: ['locked', 'running'], limit: 1000, runs: true })) {
    if (ctx.following.has(job.id) || now - job.updatedAt < QUIET_MS) continue
    const outcome = await ctx.next.resume(job)
    if (outcome === 'finished' || outcome === 'lost') {
      resolved++
      continue
    }
    if (job.runDeadline !== null && job.runDeadline <= now) {
      const reason = `no result by the run deadline (${new Date(job.runDeadline).toISOString()}); the provider is presumed lost`
      ctx.log.warn({ jobId: job.id, provider: job.provider }, reason)
      await ctx.next.fail(job, new KilnError('PEER_UNREACHABLE', reason, { deadline: job.runDeadline }))
      resolved++
    }
  }
  return resolved
}
