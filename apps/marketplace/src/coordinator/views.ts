import { TERMINAL_STATES, type JobSpec, type JobState } from '@kiln/protocol'
import type { Job } from '@kiln/scheduler'
import { planFor } from './settle.ts'
import { escrowIdOf, type CoordinatorContext } from './types.ts'

/**
 * Where a settled run's money went, in token base units: the one definition the CLI, the SDK
 * and the web app show. The client paid `work` for the seconds run, of which `fee` went to the
 * marketplace and the rest to the provider; the provider's bond came back or was slashed to the
 * client; `refunded` is what came back of the client's lock.
 */
export interface SettlementMoney {
  work: number
  fee: number
  /** The provider's pay for the work: work - fee. */
  toProviderForWork: number
  bondReturned: number
  bondSlashed: number
  refunded: number
  signature: string
}

/** What a market explorer may see of a job: never its env, command, name, logs, output digests or escrow details. */
export interface PublicJobView {
  id: string
  state: JobState
  client: string
  provider: string | null
  image: string
  resources: JobSpec['resources']
  maxPricePerHour: number
  pricePerHour: number | null
  createdAt: number
  startedAt: number | null
  endedAt: number | null
  /** A failure's stable code, without its message (which may quote the job's own output). */
  errorCode: string | null
  settlement: SettlementMoney | null
  /** What independent re-runs showed; only once the job has ended. The reason (it may name the output) is the owner's. */
  verification: Omit<NonNullable<Job['verdict']>, 'reason'> | null
}

/** Everything about a job, for its owner only. */
export interface JobView extends Omit<PublicJobView, 'errorCode' | 'verification'> {
  verification: Job['verdict'] | null
  name: string | null
  spec: Job['spec']
  maxCost: number
  lock: { escrowId: string; vault: string; multisig: string; mint: string; amount: number; deadline: number | null; provider: string; arbiter: string } | null
  lockSignature: string | null
  outputDigest: string | null
  outputBytes: number | null
  /** The provider's whole payout (work pay + its bond back) and the client's (refund + slashed bond), as sent. */
  paidToProvider: number | null
  refundedToClient: number | null
  settlementSignature: string | null
  error: Job['error']
  waiting: string | null
  updatedAt: number
  receipt: Job['receipt']
  /** For a queued job: its place in the fair order (1 = next) and a rough wait. */
  queuePosition: number | null
  estimatedWaitMs: number | null
  /** A settlement waiting for the client's co-signature: a refund the provider could not sign, or a slash. */
  pendingCosign: { transaction: string; toClient: number; action: 'refund' | 'slash' } | null
  /** Once settling: how the run ended for money (a SettlementOutcome) and what the vault does (release, refund, refund_requeue, slash). */
  settleOutcome: string | null
  settleAction: string | null
  attempt: number
  /** The provider's bond and the marketplace fee of this run (fee once settled). */
  bond: number | null
  fee: number | null
}

/** One run of a job as its owner sees it: its own run, and any re-run or tie-break. */
export interface RunView {
  id: string
  role: 'primary' | 'replica' | 'tiebreak'
  state: JobState
  provider: string | null
  lock: JobView['lock']
  lockSignature: string | null
  outputDigest: string | null
  settleOutcome: string | null
  paidToProvider: number | null
  refundedToClient: number | null
  bond: number | null
  fee: number | null
  settlementSignature: string | null
  settlement: SettlementMoney | null
  pendingCosign: JobView['pendingCosign']
}

/**
 * A settled run's money, from the settlement plan itself: what was sent adds up to the vault's
 * balance, and the plan is a pure function of the run and that balance, so replaying it gives
 * exactly the split that went on chain.
 */
export function settlementOf(job: Job): SettlementMoney | null {
  if (!job.settlementSignature || job.paidToProvider === null || job.refundedToClient === null) return null
  const plan = planFor(job, job.paidToProvider + job.refundedToClient + (job.fee ?? 0))
  return {
    work: plan.work, fee: plan.fee, toProviderForWork: plan.work - plan.fee, bondReturned: plan.bondReturned, bondSlashed: plan.bondSlashed,
    refunded: plan.client - plan.bondSlashed, signature: job.settlementSignature,
  }
}

const verdictOf = (job: Job): Job['verdict'] | null =>
  TERMINAL_STATES.includes(job.state as JobState) ? job.verdict ?? { verdict: 'unchecked', runs: 1, caught: [], at: job.updatedAt } : null

function publicVerdict(v: Job['verdict'] | null): PublicJobView['verification'] {
  if (!v) return null
  const { reason: _, ...rest } = v
  return rest
}

export function publicView(job: Job): PublicJobView {
  return {
    id: job.id, state: job.state as JobState, client: job.client, provider: job.provider, image: job.spec.image, resources: job.spec.resources,
    maxPricePerHour: job.spec.maxPricePerHour, pricePerHour: job.pricePerHour, createdAt: job.createdAt, startedAt: job.startedAt, endedAt: job.endedAt,
    errorCode: job.error?.code ?? null, settlement: settlementOf(job), verification: publicVerdict(verdictOf(job)),
  }
}

/** Position in the fair order, and a wait estimate: the jobs ahead, spread over the providers online, at the recent run length. */
function queueEstimate(ctx: CoordinatorContext, job: Job): { queuePosition: number | null; estimatedWaitMs: number | null } {
  const position = job.state === 'queued' ? ctx.placement.positions.get(job.id) ?? null : null
  if (position === null) return { queuePosition: null, estimatedWaitMs: null }
  const providers = Math.max(1, ctx.inventory.list().length)
  return { queuePosition: position, estimatedWaitMs: Math.round(Math.floor((position - 1) / providers) * ctx.placement.avgRunMs) }
}

function lockOf(ctx: CoordinatorContext, job: Job): JobView['lock'] {
  // Shown only once the vault exists on chain (the lock window opens then).
  return job.vault && job.multisig && job.provider && job.lockAmount !== null && job.lockDeadline !== null
    ? { escrowId: escrowIdOf(ctx, job), vault: job.vault, multisig: job.multisig, mint: ctx.mint, amount: job.lockAmount, deadline: job.lockDeadline, provider: job.provider, arbiter: ctx.arbiter.address }
    : null
}

const pendingOf = (job: Job): JobView['pendingCosign'] =>
  job.pendingCosign ? { transaction: job.pendingCosign.transaction, toClient: job.pendingCosign.toClient, action: job.pendingCosign.action } : null

/** The owner's view of its job. */
export function viewOf(ctx: CoordinatorContext, job: Job): JobView {
  const { errorCode: _, ...pub } = publicView(job)
  return {
    ...pub, verification: verdictOf(job), name: job.spec.name ?? null, spec: job.spec, maxCost: job.maxCost, lock: lockOf(ctx, job),
    lockSignature: job.lockSignature, outputDigest: job.outputDigest, outputBytes: job.outputBytes,
    paidToProvider: job.paidToProvider, refundedToClient: job.refundedToClient, settlementSignature: job.settlementSignature,
    error: job.error, waiting: ctx.waiting.get(job.id) ?? null, updatedAt: job.updatedAt, receipt: job.receipt,
    pendingCosign: pendingOf(job), settleOutcome: job.settleOutcome, settleAction: job.settleAction, attempt: job.attempt, bond: job.bond, fee: job.fee,
    ...queueEstimate(ctx, job),
  }
}

export function runView(ctx: CoordinatorContext, job: Job): RunView {
  return {
    id: job.id, role: job.role, state: job.state as JobState, provider: job.provider, lock: lockOf(ctx, job), lockSignature: job.lockSignature, outputDigest: job.outputDigest,
    settleOutcome: job.settleOutcome, paidToProvider: job.paidToProvider, refundedToClient: job.refundedToClient, bond: job.bond, fee: job.fee,
    settlementSignature: job.settlementSignature, settlement: settlementOf(job), pendingCosign: pendingOf(job),
  }
}
