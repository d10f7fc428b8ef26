import { eq, providers, sql } from '@kiln/db'
import type { Address } from '@kiln/protocol'
import { addEvent, emptyReputation, scoreOf, type ReputationEvent, type ReputationState } from '@kiln/verifier'
import type { CoordinatorContext } from './types.ts'

/**
 * Folds one outcome of a provider's signed receipts (or of losing its run) into its decayed
 * reputation, keeps its earnings counters, and gives the new score to the matching engine.
 */
export async function recordOutcome(
  ctx: CoordinatorContext,
  provider: Address,
  event: ReputationEvent,
  money: { earned?: number; containerSeconds?: number } = {},
): Promise<number> {
  const state = await ctx.db.transaction(async (tx) => {
    const [row] = await tx
      .select({ reputation: providers.reputation })
      .from(providers)
      .where(eq(providers.address, provider))
      .for('update')
    if (!row) return undefined
    const next = addEvent((row.reputation as ReputationState | null) ?? emptyReputation(event.at), event)
    await tx
      .update(providers)
      .set({
        reputation: next as unknown as Record<string, unknown>,
        jobsDone:
          event.kind === 'completed' || event.kind === 'verified' ? sql`${providers.jobsDone} + 1` : providers.jobsDone,
        jobsFailed:
          event.kind === 'failed' || event.kind === 'timed_out' || event.kind === 'caught'
            ? sql`${providers.jobsFailed} + 1`
            : providers.jobsFailed,
        earned: sql`${providers.earned} + ${money.earned ?? 0}`,
        containerSeconds: sql`${providers.containerSeconds} + ${money.containerSeconds ?? 0}`,
      })
      .where(eq(providers.address, provider))
    return next
  })
  const score = state ? scoreOf(state, Date.now()).score : 0.5
  ctx.reputation.set(provider, score)
  ctx.engine.setReputation(provider, score)
  return score
}

/** Scores of every known provider, for the engine at start. */
export async function loadReputations(ctx: CoordinatorContext): Promise<void> {
  const now = Date.now()
  for (const row of await ctx.db
    .select({ address: providers.address, reputation: providers.reputation })
    .from(providers)) {
    if (row.reputation)
      ctx.reputation.set(row.address, scoreOf(row.reputation as unknown as ReputationState, now).score)
  }
}
