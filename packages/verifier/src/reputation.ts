import { KilnErrorCode, type ResultReceipt } from '@kiln/protocol'

/**
 * completed: a signed receipt for a run the provider carried out (even if the job's own
 *   program failed: that is the client's, not the provider's).
 * verified: an independent run agreed with it.  caught: it was the minority of a tally.
 * timed_out: the lease lapsed without a receipt.  failed: the provider's side failed
 *   (image missing, Docker down, lease refused).
 */
export type ReputationEventKind = 'completed' | 'verified' | 'caught' | 'timed_out' | 'failed'
export const REPUTATION_EVENT_KINDS: readonly ReputationEventKind[] = [
  'completed',
  'verified',
  'caught',
  'timed_out',
  'failed',
]

export interface ReputationEvent {
  kind: ReputationEventKind
  /** When it happened, ms since the epoch (a receipt's endedAt, a verdict's time). */
  at: number
}

export interface ReputationConfig {
  /** Evidence loses half its weight every halfLifeMs (default 30 days). */
  halfLifeMs: number
  /** Being caught is forgotten more slowly (default 4 half-lives). */
  caughtHalfLifeMs: number
  /** Evidence per event: positive for completed and verified, negative for failed and timed_out. */
  weights: { completed: number; verified: number; failed: number; timed_out: number }
  /** Pseudo-events on each side, so a new provider starts at 0.5 and moves only with evidence. */
  prior: number
  /** One fresh catch divides the score by (1 + caughtPenalty). */
  caughtPenalty: number
}

const DAY_MS = 86_400_000
export const DEFAULT_REPUTATION: ReputationConfig = {
  halfLifeMs: 30 * DAY_MS,
  caughtHalfLifeMs: 120 * DAY_MS,
  weights: { completed: 1, verified: 2, failed: 1, timed_out: 2 },
  prior: 2,
  caughtPenalty: 9,
}

/**
 * A provider's evidence as of `at`, already decayed: what the database keeps per provider
 * instead of every event. Folding events in any order gives the same state.
 */
export interface ReputationState {
  at: number
  positive: number
  negative: number
  caught: number
  /** Plain counts, never decayed, for display. */
  counts: Record<ReputationEventKind, number>
}

export interface Reputation {
  /** In [0, 1]; 0.5 for a provider with no history. */
  score: number
  counts: Record<ReputationEventKind, number>
  evidence: { positive: number; negative: number; caught: number }
}

export function emptyReputation(at = 0): ReputationState {
  return {
    at,
    positive: 0,
    negative: 0,
    caught: 0,
    counts: { completed: 0, verified: 0, caught: 0, timed_out: 0, failed: 0 },
  }
}

const decay = (ms: number, halfLife: number): number => 2 ** (-Math.max(0, ms) / halfLife)

/** The same evidence seen at a later time (never earlier: evidence does not grow back). */
export function decayTo(s: ReputationState, now: number, cfg: ReputationConfig = DEFAULT_REPUTATION): ReputationState {
  if (now <= s.at) return s
  const f = decay(now - s.at, cfg.halfLifeMs)
  return {
    ...s,
    at: now,
    positive: s.positive * f,
    negative: s.negative * f,
    caught: s.caught * decay(now - s.at, cfg.caughtHalfLifeMs),
  }
}

export function addEvent(
  state: ReputationState,
  e: ReputationEvent,
  cfg: ReputationConfig = DEFAULT_REPUTATION,
): ReputationState {
  const s = decayTo(state, e.at, cfg)
  // An event older than the state counts with the weight it has left by now.
  const age = s.at - e.at
  const counts = { ...s.counts, [e.kind]: s.counts[e.kind] + 1 }
  switch (e.kind) {
    case 'caught':
      return { ...s, counts, caught: s.caught + decay(age, cfg.caughtHalfLifeMs) }
    case 'completed':
    case 'verified':
      return { ...s, counts, positive: s.positive + cfg.weights[e.kind] * decay(age, cfg.halfLifeMs) }
    case 'failed':
    case 'timed_out':
      return { ...s, counts, negative: s.negative + cfg.weights[e.kind] * decay(age, cfg.halfLifeMs) }
  }
}

/**
 * The score at `now`: the share of positive evidence (with a neutral prior), divided by
 * (1 + caughtPenalty * decayed catches). Being caught is deliberate cheating, not bad luck,
 * so it outweighs any amount of good work until it has decayed.
 */
export function scoreOf(state: ReputationState, now: number, cfg: ReputationConfig = DEFAULT_REPUTATION): Reputation {
  const s = decayTo(state, now, cfg)
  const base = (cfg.prior + s.positive) / (2 * cfg.prior + s.positive + s.negative)
  const score = base / (1 + cfg.caughtPenalty * s.caught)
  return { score, counts: s.counts, evidence: { positive: s.positive, negative: s.negative, caught: s.caught } }
}

/** The score at `now` from a provider's events. */
export function reputation(
  events: readonly ReputationEvent[],
  now: number,
  cfg: ReputationConfig = DEFAULT_REPUTATION,
): Reputation {
  return scoreOf(
    events.reduce((s, e) => addEvent(s, e, cfg), emptyReputation()),
    now,
    cfg,
  )
}

/** Failures that are the job's own doing: it ran past its timeout or wrote too much. */
const JOB_SIDE = new Set<string>([KilnErrorCode.CONTAINER_TIMEOUT, KilnErrorCode.OUTPUT_TOO_LARGE])

/**
 * The event a signed receipt (already checked with checkReceipt) stands for. A run whose
 * program exited (whatever its code), timed out or overflowed its outputs was carried out;
 * a failure with no exit code otherwise (image missing, Docker down, the run stopped)
 * counts against the provider. Verification verdicts add 'verified' or 'caught' on top.
 */
export function eventFromReceipt(r: Pick<ResultReceipt, 'status' | 'exitCode' | 'error' | 'endedAt'>): ReputationEvent {
  const carriedOut =
    r.status === 'succeeded' || r.exitCode !== null || (r.error !== undefined && JOB_SIDE.has(r.error.code))
  return { kind: carriedOut ? 'completed' : 'failed', at: r.endedAt }
}
