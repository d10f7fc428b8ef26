import { isKilnError, type KilnError, type KilnErrorName } from '@kiln/protocol'
import type { Job } from '@kiln/scheduler'
import type { Address } from '@kiln/protocol'
import type { CoordinatorContext } from './types.ts'

/** Failures where another provider may well succeed: the job is refunded and placed again. */
const RETRY_ELSEWHERE: ReadonlySet<KilnErrorName> = new Set<KilnErrorName>([
  'PEER_UNREACHABLE',
  'LEASE_REFUSED',
  'DOCKER_UNAVAILABLE',
  'BOND_NOT_POSTED',
  'ARTIFACT_DIGEST_MISMATCH',
  'ENVELOPE_BAD_SIGNATURE',
  'ENVELOPE_WRONG_SIGNER',
  'ARTIFACT_NOT_FOUND',
  'NETWORK_UNAVAILABLE',
])
/**
 * Of those, the ones that rule the provider out for this job; a refusal may be momentary.
 * A receipt that does not check out (bad signature, output that does not hash to its digest)
 * is never paid, and that provider gets no second chance at the job.
 */
const EXCLUDE: ReadonlySet<KilnErrorName> = new Set<KilnErrorName>([
  'PEER_UNREACHABLE',
  'DOCKER_UNAVAILABLE',
  'BOND_NOT_POSTED',
  'ARTIFACT_DIGEST_MISMATCH',
  'ENVELOPE_BAD_SIGNATURE',
  'ENVELOPE_WRONG_SIGNER',
  'ARTIFACT_NOT_FOUND',
  'NETWORK_UNAVAILABLE',
])
export const MAX_PLACEMENTS = 3

/**
 * A run ended without a usable receipt. Everything locked goes back to the client; when the
 * fault was the provider's and placements remain, the job is queued again without it.
 */
export async function failRun(ctx: CoordinatorContext, job: Job, e: KilnError): Promise<void> {
  const requeue = RETRY_ELSEWHERE.has(e.kind) && job.attempt < MAX_PLACEMENTS
  const timedOut = isKilnError(e, 'PEER_UNREACHABLE') && e.context.deadline !== undefined
  const moved = await ctx.store.transition(
    job.id,
    ['locked', 'running', 'verifying'],
    'settling',
    `run failed: ${e.message}${requeue ? '; refunding and placing the job again' : ''}`,
    {
      settleAction: requeue ? 'refund_requeue' : 'refund',
      settleOutcome: timedOut ? 'timeout' : 'failed_provider',
      paidToProvider: 0,
      refundedToClient: job.lockAmount ?? 0,
      error: requeue ? null : { code: e.code, kind: e.kind, message: e.message },
      excluded: job.provider && EXCLUDE.has(e.kind) ? [...new Set([...job.excluded, job.provider])] : job.excluded,
    },
    { code: e.code },
  )
  if (moved && job.provider && EXCLUDE.has(e.kind)) {
    // Losing a run it had accepted counts against the provider; sitting on it past its deadline, more.
    await ctx.inventory
      .recordOutcome(job.provider as Address, { kind: timedOut ? 'timed_out' : 'failed', at: Date.now() })
      .catch(() => {})
  }
  if (moved) await ctx.next.settle(job)
  // The job's other runs may have been waiting for this one.
  if (moved && !requeue && (job.parentId || job.spotCheck)) await ctx.next.verify(job.parentId ?? job.id)
}
