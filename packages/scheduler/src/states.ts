import type { JobState } from '@kiln/protocol'

/**
 * The lifecycle. `settling` carries the pending action (release or refund) on the job row;
 * it ends in `done` (paid) or `failed` (refunded, with the reason kept).
 */
export const TRANSITIONS: Readonly<Record<JobState, readonly JobState[]>> = {
  queued: ['matched', 'cancelled', 'expired', 'failed'],
  // matched → settling: cancelled after the client's funds already reached the vault.
  matched: ['locked', 'queued', 'cancelled', 'failed', 'settling'],
  // A receipt can come back for a run that never started (e.g. its image was missing).
  locked: ['running', 'verifying', 'settling', 'failed'],
  running: ['verifying', 'settling', 'failed'],
  verifying: ['settling', 'failed'],
  // settling → queued: the provider lost the job, its vault was refunded, it is placed again.
  settling: ['done', 'failed', 'queued', 'cancelled'],
  done: [],
  failed: [],
  cancelled: [],
  expired: [],
}

export function canTransition(from: JobState, to: JobState): boolean {
  return TRANSITIONS[from].includes(to)
}

/** States from which `to` may be entered. */
export function sourcesOf(to: JobState): JobState[] {
  return (Object.keys(TRANSITIONS) as JobState[]).filter((s) => TRANSITIONS[s].includes(to))
}
