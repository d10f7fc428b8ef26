import { eq, providers, sql, type Db } from '@kiln/db'
import type { Address } from '@kiln/protocol'
import { addEvent, emptyReputation, scoreOf, type ReputationEvent, type ReputationState } from '@kiln/verifier'

/** What a run paid or used, for the provider's earnings counters. */
export interface OutcomeMoney {
  earned?: number
  containerSeconds?: number
}

/**
 * Folds one outcome into a provider's decayed reputation in the database, with its earnings
 * counters, in one transaction; returns the new score (0.5 for a provider the database does
 * not know). The provider directory (inventory.ts) keeps the score and gives it to the engine.
 */
export async function foldOutcome(
  db: Db,
  provider: Address,
  event: ReputationEvent,
  money: OutcomeMoney = {},
): Promise<number> {
  const state = await db.transaction(async (tx) => {
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
  return state ? scoreOf(state, Date.now()).score : 0.5
}

/** Scores of every provider the database has a reputation for. */
export async function loadScores(db: Db, now = Date.now()): Promise<[string, number][]> {
  const out: [string, number][] = []
  for (const row of await db.select({ address: providers.address, reputation: providers.reputation }).from(providers))
    if (row.reputation) out.push([row.address, scoreOf(row.reputation as unknown as ReputationState, now).score])
  return out
}
