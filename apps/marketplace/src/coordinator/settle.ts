import { Transaction } from '@solana/web3.js'
import { eq, providers, settlements, sql } from '@kiln/db'
import { payoutsFor, planSettlement, type Payout, type SettlementOutcome, type SettlementPlan } from '@kiln/escrow'
import {
  Kind,
  KilnError,
  parseOrThrow,
  Protocol,
  seal,
  SettleReply,
  type Address,
  type ResultReceipt,
  type TokenUnit,
} from '@kiln/protocol'
import type { Job, TaskOutcome } from '@kiln/scheduler'
import { escrowIdOf, vaultStatus, type CoordinatorContext } from './types.ts'

/**
 * Pays out a run's vault (the client's lock and the provider's bond) by the plan for its
 * outcome: the arbiter builds and signs the transaction and one other party co-signs it (two
 * of three keys): the provider for a release, split or refund; the client for a slash
 * (which the provider would never sign) and for a refund the provider is gone to sign. Safe
 * to run any number of times: a closed vault has been paid already.
 */
export async function settle(ctx: CoordinatorContext, jobId: string): Promise<TaskOutcome> {
  const job = await ctx.store.get(jobId)
  if (!job || job.state !== 'settling') return { done: true }
  const key = escrowIdOf(ctx, job)
  const status = await vaultStatus(ctx, job)
  if (!status.exists) {
    // Closed: a previous attempt settled it (its signature is recorded if we got that far).
    await afterSettlement(ctx, job, job.settlementSignature ?? null, 'vault already settled')
    return { done: true }
  }
  const plan = planFor(job, status.balance, ctx.config.token)
  const client = job.client as Address
  const provider = job.provider as Address
  const payouts = payoutsFor(plan, { client, provider, feeTo: ctx.arbiter.address })
  if (plan.cosigner === 'client') return awaitClient(ctx, job, key, plan, payouts, 'slash')
  // What the provider is asked to sign: a release pays it for work; a refund only returns its bond.
  const action = plan.work > 0 ? 'release' : 'refund'
  let signed: string
  try {
    const { tx } = await ctx.escrow.buildSettlement({ jobId: key, client, provider, cosigner: 'provider', payouts })
    signed = await requestCosign(ctx, provider, job.parentId ?? job.id, action, tx)
  } catch (err) {
    if (action === 'release') {
      ctx.log.warn({ jobId, provider, err: (err as Error).message }, 'provider did not co-sign its payment; will retry')
      return { retryInMs: 3000 }
    }
    // A refund the provider cannot co-sign (it is gone): the client, who gets the money, can.
    ctx.log.info({ jobId, err: (err as Error).message }, "refund waits for the client's co-signature")
    return awaitClient(ctx, job, key, plan, payouts, 'refund')
  }
  await submit(ctx, job, signed, plan.action, plan)
  return { done: true }
}

/**
 * Who gets what from this vault. Whatever is in it up to the lock is the client's payment;
 * beyond that, up to the bond, the provider's bond (a provider that never posted it has none
 * to lose or get back); anything more goes back to the client with the remainder.
 */
export function planFor(job: Job, balance: number, token?: TokenUnit): SettlementPlan {
  const lock = Math.min(balance, job.lockAmount ?? balance)
  const bond = Math.min(job.bond ?? 0, balance - lock)
  const receipt = job.receipt?.payload as ResultReceipt | undefined
  return planSettlement({
    lock,
    bond,
    pricePerHour: job.pricePerHour ?? 0,
    containerSeconds: receipt?.containerSeconds ?? 0,
    outcome: (job.settleOutcome as SettlementOutcome | null) ?? 'failed_provider',
    feeBps: job.feeBps ?? 0,
    token,
  })
}

/** Builds the settlement for the client to co-sign; rebuilt now and then, as blockhashes expire. */
async function awaitClient(
  ctx: CoordinatorContext,
  job: Job,
  key: string,
  plan: SettlementPlan,
  payouts: Payout[],
  action: 'refund' | 'slash',
): Promise<TaskOutcome> {
  const { tx } = await ctx.escrow.buildSettlement({
    jobId: key,
    client: job.client as Address,
    provider: job.provider as Address,
    cosigner: 'client',
    payouts,
  })
  await ctx.store.update(job.id, {
    pendingCosign: { transaction: tx, action, toClient: plan.client, builtAt: Date.now() },
  })
  if (action === 'slash')
    ctx.log.info({ jobId: job.id, toClient: plan.client }, "slash waits for the client's co-signature")
  return { retryInMs: 30_000 }
}

/** The client co-signed a pending refund: it must be exactly the transaction we built. */
export async function submitClientCosign(ctx: CoordinatorContext, job: Job, transaction: string): Promise<void> {
  const pending = job.pendingCosign
  if (!pending || job.state !== 'settling')
    throw new KilnError('JOB_WRONG_STATE', `job ${job.id} has no settlement waiting for the client`, {
      state: job.state,
    })
  const theirs = Transaction.from(Buffer.from(transaction, 'base64')).serializeMessage()
  const ours = Transaction.from(Buffer.from(pending.transaction, 'base64')).serializeMessage()
  if (!theirs.equals(ours))
    throw new KilnError('SETTLEMENT_REFUSED', 'the co-signed transaction differs from the one the marketplace built')
  const status = await vaultStatus(ctx, job)
  const plan = planFor(job, status.balance, ctx.config.token)
  await submit(ctx, job, transaction, plan.action, plan)
}

async function submit(
  ctx: CoordinatorContext,
  job: Job,
  signed: string,
  action: string,
  plan: SettlementPlan,
): Promise<void> {
  const signature = await ctx.escrow.submitSettlement(signed)
  const { provider: toProvider, client: toClient } = plan
  await ctx.store.update(job.id, {
    settlementSignature: signature,
    paidToProvider: toProvider,
    refundedToClient: toClient,
    fee: plan.fee,
    pendingCosign: null,
  })
  await ctx.db
    .insert(settlements)
    .values({ jobId: job.id, attempt: job.attempt, action, signature, toProvider, toClient, at: Date.now() })
    .onConflictDoNothing()
  if (plan.work - plan.fee > 0 && job.provider) {
    await ctx.db
      .update(providers)
      .set({ earned: sql`${providers.earned} + ${plan.work - plan.fee}` })
      .where(eq(providers.address, job.provider))
      .catch(() => {})
  }
  ctx.log.info(
    { jobId: job.id, action, signature, toProvider, toClient, fee: plan.fee, bondSlashed: plan.bondSlashed },
    'settled',
  )
  // The provider signed nothing here: tell it, so its own books show the slash (best effort).
  if (plan.action === 'slash' && job.provider)
    void requestCosign(ctx, job.provider as Address, job.parentId ?? job.id, 'slash', signed).catch(() => {})
  await afterSettlement(ctx, job, signature, plan.lines.join('; '))
}

async function afterSettlement(
  ctx: CoordinatorContext,
  job: Job,
  signature: string | null,
  reason: string,
): Promise<void> {
  if (job.settleAction === 'refund_requeue') {
    const back = await ctx.store.transition(
      job.id,
      ['settling'],
      'queued',
      `${reason}; placing the job again`,
      {
        provider: null,
        vault: null,
        multisig: null,
        lockAmount: null,
        pricePerHour: null,
        lockDeadline: null,
        lockSignature: null,
        runDeadline: null,
        settleAction: null,
        settlementSignature: null,
        pendingCosign: null,
        startedAt: null,
        bond: null,
        feeBps: null,
        fee: null,
        settleOutcome: null,
        receipt: null,
        outputDigest: null,
        outputBytes: null,
        endedAt: null,
        lapses: 0,
        parkedAt: null,
      },
      { signature },
    )
    if (back) ctx.next.place()
    return
  }
  const fresh = (await ctx.store.get(job.id)) ?? job
  // A caught job's own row ends done when the majority's result replaced its output.
  const final =
    fresh.cancelRequestedAt !== null ? 'cancelled' : fresh.error || fresh.settleAction === 'refund' ? 'failed' : 'done'
  await ctx.store.transition(
    job.id,
    ['settling'],
    final,
    reason,
    { settlementSignature: signature, pendingCosign: null },
    { signature },
  )
}

async function requestCosign(
  ctx: CoordinatorContext,
  provider: Address,
  jobId: string,
  action: 'release' | 'refund' | 'slash',
  tx: string,
): Promise<string> {
  const addrs = ctx.inventory.get(provider)?.addrs
  const ch = await ctx.mesh.open(provider, Protocol.settle, addrs ? { addrs } : {})
  try {
    await ch.sendJson({
      envelope: seal(ctx.arbiter, Kind.settleRequest, { jobId, action, transaction: tx }, { ttlMs: 60_000 }),
    })
    const reply = parseOrThrow(SettleReply, await ch.nextJson(15_000), 'settle reply')
    if (!reply.ok)
      throw new KilnError('SETTLEMENT_REFUSED', `provider refused to co-sign: ${reply.error.message}`, {
        providerError: reply.error,
      })
    return reply.transaction
  } finally {
    await ch.close().catch(() => {})
  }
}
