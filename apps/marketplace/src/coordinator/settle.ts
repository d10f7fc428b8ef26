import { Transaction } from '@solana/web3.js'
import { settlements } from '@kiln/db'
import { Kind, KilnError, parseOrThrow, Protocol, seal, SettleReply, type Address } from '@kiln/protocol'
import type { Job, TaskOutcome } from '@kiln/scheduler'
import { placementPass } from './dispatch.ts'
import { vaultKey, type CoordinatorContext } from './types.ts'

/**
 * Pays out a job's vault: the arbiter builds and signs the transaction and one other party
 * co-signs it (two of three keys) — the provider, or for a refund the provider can no longer
 * give, the client. Safe to run any number of times: a closed vault has been paid already.
 */
export async function settle(ctx: CoordinatorContext, jobId: string): Promise<TaskOutcome> {
  const job = await ctx.store.get(jobId)
  if (!job || job.state !== 'settling') return { done: true }
  const key = vaultKey(jobId, job.attempt)
  const status = await ctx.escrow.settlementStatus(key)
  if (!status.exists) {
    // Closed: a previous attempt settled it (its signature is recorded if we got that far).
    await afterSettlement(ctx, job, job.settlementSignature ?? null, 'vault already settled')
    return { done: true }
  }
  const toProvider = job.paidToProvider ?? 0
  // Whatever is in the vault beyond the provider's pay goes back to the client.
  const toClient = status.balance - toProvider
  if (toClient < 0) throw new KilnError('ESCROW_NOT_FUNDED', `vault holds ${status.balance}, less than the ${toProvider} owed`)
  const client = job.client as Address
  const provider = job.provider as Address
  const payouts = [{ to: provider, amount: toProvider }, { to: client, amount: toClient }].filter((p) => p.amount > 0)
  const action = toProvider > 0 ? 'release' : 'refund'
  let signed: string
  try {
    const { tx } = await ctx.escrow.buildSettlement({ jobId: key, client, provider, cosigner: 'provider', payouts })
    signed = await requestCosign(ctx, provider, jobId, action, tx)
  } catch (err) {
    if (action === 'release') {
      ctx.log.warn({ jobId, provider, err: (err as Error).message }, 'provider did not co-sign its payment; will retry')
      return { retryInMs: 3000 }
    }
    // A refund the provider cannot co-sign (it is gone): the client, who gets the money, can.
    const { tx } = await ctx.escrow.buildSettlement({ jobId: key, client, provider, cosigner: 'client', payouts })
    await ctx.store.update(jobId, { pendingCosign: { transaction: tx, action: 'refund', toClient, builtAt: Date.now() } })
    ctx.log.info({ jobId, err: (err as Error).message }, 'refund waits for the client\'s co-signature')
    // Blockhashes expire: rebuild the request now and then until the client signs.
    return { retryInMs: 30_000 }
  }
  await submit(ctx, job, signed, action, toProvider, toClient)
  return { done: true }
}

/** The client co-signed a pending refund: it must be exactly the transaction we built. */
export async function submitClientCosign(ctx: CoordinatorContext, job: Job, transaction: string): Promise<void> {
  const pending = job.pendingCosign
  if (!pending || job.state !== 'settling') throw new KilnError('JOB_WRONG_STATE', `job ${job.id} has no settlement waiting for the client`, { state: job.state })
  const theirs = Transaction.from(Buffer.from(transaction, 'base64')).serializeMessage()
  const ours = Transaction.from(Buffer.from(pending.transaction, 'base64')).serializeMessage()
  if (!theirs.equals(ours)) throw new KilnError('SETTLEMENT_REFUSED', 'the co-signed transaction differs from the one the marketplace built')
  await submit(ctx, job, transaction, 'refund', 0, pending.toClient)
}

async function submit(ctx: CoordinatorContext, job: Job, signed: string, action: string, toProvider: number, toClient: number): Promise<void> {
  const signature = await ctx.escrow.submitSettlement(signed)
  await ctx.store.update(job.id, { settlementSignature: signature, paidToProvider: toProvider, refundedToClient: toClient, pendingCosign: null })
  await ctx.db.insert(settlements).values({ jobId: job.id, attempt: job.attempt, action, signature, toProvider, toClient, at: Date.now() }).onConflictDoNothing()
  ctx.log.info({ jobId: job.id, action, signature, toProvider, toClient }, 'settled')
  await afterSettlement(ctx, job, signature, `${action}: ${toProvider} to provider, ${toClient} to client`)
}

async function afterSettlement(ctx: CoordinatorContext, job: Job, signature: string | null, reason: string): Promise<void> {
  if (job.settleAction === 'refund_requeue') {
    const back = await ctx.store.transition(job.id, ['settling'], 'queued', `${reason}; placing the job again`, {
      provider: null, vault: null, multisig: null, lockAmount: null, pricePerHour: null, lockDeadline: null, lockSignature: null,
      runDeadline: null, settleAction: null, settlementSignature: null, pendingCosign: null, startedAt: null,
    }, { signature })
    if (back) void placementPass(ctx).catch(() => {})
    return
  }
  const final = job.cancelRequestedAt !== null ? 'cancelled' : job.settleAction === 'release' && !job.error ? 'done' : 'failed'
  await ctx.store.transition(job.id, ['settling'], final, reason, { settlementSignature: signature, pendingCosign: null }, { signature })
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
