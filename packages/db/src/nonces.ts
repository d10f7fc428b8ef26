import { lte } from 'drizzle-orm'
import type { Db } from './open.ts'
import { usedNonces } from './schema.ts'

/**
 * Records that `signer` used `nonce` in an envelope living until `expiresAt`: true the first
 * time, false while an earlier use has not expired (a replay). The insert is one atomic
 * statement on the (signer, nonce) key, so of two coordinators on one database handed the
 * same envelope at once, exactly one accepts it.
 */
export async function claimNonce(
  db: Db,
  signer: string,
  nonce: string,
  expiresAt: number,
  now = Date.now(),
): Promise<boolean> {
  const rows = await db
    .insert(usedNonces)
    .values({ signer, nonce, expiresAt })
    // A row left by an expired envelope (not yet pruned) no longer guards anything.
    .onConflictDoUpdate({
      target: [usedNonces.signer, usedNonces.nonce],
      set: { expiresAt },
      setWhere: lte(usedNonces.expiresAt, now),
    })
    .returning({ signer: usedNonces.signer })
  return rows.length === 1
}

/** Forgets the nonces of expired envelopes: those can no longer be replayed. Returns how many. */
export async function pruneNonces(db: Db, now = Date.now()): Promise<number> {
  return (await db.delete(usedNonces).where(lte(usedNonces.expiresAt, now)).returning({ signer: usedNonces.signer }))
    .length
}
