import type { JobView, PublicJobView, RunView, SettlementMoney, VerdictView } from '@kiln/api'
import { TERMINAL_STATES, type JobState } from '@kiln/protocol'
import type { Job } from '@kiln/scheduler'
import { planFor } from './settle.ts'
import { escrowIdOf, type CoordinatorContext } from './types.ts'

// The views are declared in @kiln/api, which the SDK, the CLI and the web app share; they are built from a job's row here.

/**
 * A settled run's money, from the settlement plan itself: what was sent adds up to the vault's
 * balance, and the plan is a pure function of the run and that balance, so replaying it gives
 * exactly the split that went on chain.
 */
export function settlementOf(job: Job): SettlementMoney | null {
  if (!job.settlementSignature || job.paidToProvider === null || job.refundedToClient === null) return null
  const plan = planFor(job, job.paidToProvider + job.refundedToClient + (job.fee ?? 0))
  return {
    work: plan.work,
    fee: plan.fee,
    toProviderForWork: plan.work - plan.fee,
    bondReturned: plan.bondReturned,
    bondSlashed: plan.bondSlashed,
    refunded: plan.client - plan.bondSlashed,
    signature: job.settlementSignature,
  }
}

const verdictOf = (job: Job): VerdictView | null =>
  TERMINAL_STATES.includes(job.state as JobState)
    ? (job.verdict ?? { verdict: 'unchecked', runs: 1, caught: [], at: job.updatedAt })
    : null

function publicVerdict(v: VerdictView | null): PublicJobView['verification'] {
  if (!v) return null
  const { reason: _, ...rest } = v
  return rest
}

export function publicView(job: Job): PublicJobView {
  return {
    id: job.id,
    state: job.state as JobState,
    client: job.client,
    provider: job.provider,
    image: job.spec.image,
    resources: job.spec.resources,
    maxPricePerHour: job.spec.maxPricePerHour,
    pricePerHour: job.pricePerHour,
    createdAt: job.createdAt,
    startedAt: job.startedAt,
    endedAt: job.endedAt,
    errorCode: job.error?.code ?? null,
    settlement: settlementOf(job),
    verification: publicVerdict(verdictOf(job)),
  }
}

/** Position in the fair order, and a wait estimate: the jobs ahead, spread over the providers online, at the recent run length. */
function queueEstimate(
  ctx: CoordinatorContext,
  job: Job,
): { queuePosition: number | null; estimatedWaitMs: number | null } {
  const position = job.state === 'queued' ? ctx.book.positionOf(job.id) : null
  if (position === null) return { queuePosition: null, estimatedWaitMs: null }
  const providers = Math.max(1, ctx.inventory.list().length)
  return {
    queuePosition: position,
    estimatedWaitMs: Math.round(Math.floor((position - 1) / providers) * ctx.book.avgRunMs),
  }
}

function lockOf(ctx: CoordinatorContext, job: Job): JobView['lock'] {
  // Shown only once the vault exists on chain (the lock window opens then).
  return job.vault && job.multisig && job.provider && job.lockAmount !== null && job.lockDeadline !== null
    ? {
        escrowId: escrowIdOf(ctx, job),
        vault: job.vault,
        multisig: job.multisig,
        mint: ctx.mint,
        amount: job.lockAmount,
        deadline: job.lockDeadline,
        provider: job.provider,
        arbiter: ctx.arbiter.address,
      }
    : null
}

const pendingOf = (job: Job): JobView['pendingCosign'] =>
  job.pendingCosign
    ? {
        transaction: job.pendingCosign.transaction,
        toClient: job.pendingCosign.toClient,
        action: job.pendingCosign.action,
      }
    : null

/** The owner's view of its job. */
export function viewOf(ctx: CoordinatorContext, job: Job): JobView {
  const { errorCode: _, ...pub } = publicView(job)
  return {
    ...pub,
    verification: verdictOf(job),
    name: job.spec.name ?? null,
    spec: job.spec,
    maxCost: job.maxCost,
    lock: lockOf(ctx, job),
    lockSignature: job.lockSignature,
    outputDigest: job.outputDigest,
    outputBytes: job.outputBytes,
    paidToProvider: job.paidToProvider,
    refundedToClient: job.refundedToClient,
    settlementSignature: job.settlementSignature,
    error: job.error,
    waiting: ctx.book.waitingReason(job.id),
    updatedAt: job.updatedAt,
    receipt: job.receipt,
    pendingCosign: pendingOf(job),
    settleOutcome: job.settleOutcome,
    settleAction: job.settleAction,
    attempt: job.attempt,
    bond: job.bond,
    fee: job.fee,
    ...queueEstimate(ctx, job),
  }
}

export function runView(ctx: CoordinatorContext, job: Job): RunView {
  return {
    id: job.id,
    role: job.role,
    state: job.state as JobState,
    provider: job.provider,
    lock: lockOf(ctx, job),
    lockSignature: job.lockSignature,
    outputDigest: job.outputDigest,
    settleOutcome: job.settleOutcome,
    paidToProvider: job.paidToProvider,
    refundedToClient: job.refundedToClient,
    bond: job.bond,
    fee: job.fee,
    settlementSignature: job.settlementSignature,
    settlement: settlementOf(job),
    pendingCosign: pendingOf(job),
  }
}
