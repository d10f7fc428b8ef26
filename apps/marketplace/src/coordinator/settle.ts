import { Kind, KilnError, parseOrThrow, Protocol, seal, SettleReply, type Address } from '@kiln/protocol'
import { settlements } from '@kiln/db'
import type { TaskOutcome } from '@kiln/scheduler'
import { vaultKey, type CoordinatorContext } from './types.ts'

/**
 * Pays out a job's vault: the arbiter builds and signs the transaction, the provider
 * co-signs it (two of three keys), the arbiter submits it. Safe to run any number of times:
 * a vault that is already closed has been paid, and the job is just marked so.
 */
export async function settle(ctx: CoordinatorContext, jobId: string): Promise<TaskOutcome> {
  const job = await ctx.store.get(jobId)
  if (!job || job.state !== 'settling') return { done: true }
  const final = job.settleAction === 'release' && !job.error ? 'done' : 'failed'
  const key = vaultKey(jobId, job.attempt)
  const client = job.client as Address
  const provider = job.provider as Address
  const status = await ctx.escrow.settlementStatus(key)
  if (!status.exists) {
    // Closed: a previous attempt settled it (its signature is recorded if we got that far).
    await ctx.store.transition(jobId, ['settling'], final, 'vault already settled', { settlementSignature: job.settlementSignature })
    return { done: true }
  }
  const toProvider = job.paidToProvider ?? 0
  // Whatever is in the vault beyond the provider's pay goes back to the client.
  const toClient = status.balance - toProvider
  if (toClient < 0) throw new KilnError('ESCROW_NOT_FUNDED', `vault holds ${status.balance}, less than the ${toProvider} owed`)
  const payouts = [{ to: provider, amount: toProvider }, { to: client, amount: toClient }].filter((p) => p.amount > 0)
  const { tx } = await ctx.escrow.buildSettlement({ jobId: key, client, provider, cosigner: 'provider', payouts })
  const action = toProvider > 0 ? 'release' : 'refund'
  let signed: string
  try {
    signed = await requestCosign(ctx, provider, jobId, action, tx)
  } catch (err) {
    ctx.log.warn({ jobId, provider, err: (err as Error).message }, 'provider did not co-sign the settlement; will retry')
    return { retryInMs: 2000 }
  }
  const signature = await ctx.escrow.submitSettlement(signed)
  await ctx.store.update(jobId, { settlementSignature: signature, paidToProvider: toProvider, refundedToClient: toClient })
  await ctx.store.transition(jobId, ['settling'], final, `${action}: ${toProvider} to provider, ${toClient} to client`, {}, { signature })
  await recordSettlement(ctx, jobId, action, signature, toProvider, toClient)
  ctx.inventory.release(provider, jobId)
  ctx.log.info({ jobId, action, signature, toProvider, toClient }, 'settled')
  return { done: true }
}

async function requestCosign(ctx: CoordinatorContext, provider: Address, jobId: string, action: 'release' | 'refund', tx: string): Promise<string> {
  const addrs = ctx.inventory.get(provider)?.addrs
  const ch = await ctx.mesh.open(provider, Protocol.settle, addrs ? { addrs } : {})
  try {
    await ch.sendJson({ envelope: seal(ctx.arbiter, Kind.settleRequest, { jobId, action, transaction: tx }, { ttlMs: 60_000 }) })
    const reply = parseOrThrow(SettleReply, await ch.nextJson(15_000), 'settle reply')
    if (!reply.ok) throw new KilnError('SETTLEMENT_REFUSED', `provider refused to co-sign: ${reply.error.message}`, { providerError: reply.error })
    return reply.transaction
  } finally {
    await ch.close().catch(() => {})
  }
}

async function recordSettlement(ctx: CoordinatorContext, jobId: string, action: string, signature: string, toProvider: number, toClient: number): Promise<void> {
  await ctx.db.insert(settlements).values({ jobId, action, signature, toProvider, toClient, at: Date.now() }).onConflictDoNothing()
}
