import { Transaction } from '@solana/web3.js'
import { addressFromPublicKey, formatAmount, isKilnError, KilnError, tokenUnitFor, type Address } from '@kiln/protocol'
import type { Escrow, JobParties, Payout, SettlementExpectation } from './arbiter.ts'
import { payoutsFor, type SettlementPlan } from './plan.ts'

export interface SettleInit {
  escrow: Escrow
  /** jobId here is the vault's escrow id. */
  job: JobParties
  plan: SettlementPlan
  /** Where the marketplace fee goes; the arbiter by default. */
  feeTo?: Address
  /** Gets the co-signer's signature (over the mesh for a provider, through the API for a client). */
  cosign: (req: {
    tx: string
    expected: SettlementExpectation
    cosigner: 'client' | 'provider'
    minPayout: number
  }) => Promise<string>
  /**
   * Write-ahead record: called with the signed transaction and its signature before it is
   * sent, so that after a crash the retry finds it (as `pending`) instead of guessing.
   */
  record?: (r: { signature: string; tx: string; payouts: Payout[] }) => Promise<void>
  /** A settlement recorded by an earlier attempt (its signed transaction, base64). */
  pending?: string
}

export type SettleResult =
  { status: 'settled'; signature: string; payouts: Payout[] | null } | { status: 'already_settled'; signature: null }

/** The transaction's id: the fee payer's (arbiter's) signature, known before it is sent. */
export function settlementSignature(txBase64: string): string {
  const sig = Transaction.from(Buffer.from(txBase64, 'base64')).signature
  if (!sig) throw new KilnError('ESCROW_TX_REJECTED', 'settlement is not signed by its fee payer')
  return addressFromPublicKey(sig)
}

/**
 * Carries out a settlement plan at most once. It reads the chain before sending: a closed
 * vault means the job was settled (the settling transaction closes it), so a retry pays
 * nobody. A recorded `pending` transaction is re-sent first; it either lands (the same
 * signature: the settlement that was recorded) or has expired, and then a fresh one is
 * built only if the vault is still open. Two racing calls cannot both pay: the first to
 * land closes the vault and the other fails on chain, which reads as already settled.
 */
export async function settleOnce(init: SettleInit): Promise<SettleResult> {
  const { escrow, job, plan } = init
  if (init.pending) {
    try {
      return { status: 'settled', signature: await escrow.submitSettlement(init.pending), payouts: null }
    } catch (e) {
      // Expired or refused: fall through to the chain's word on whether the vault is open.
      if (!isKilnError(e, 'ESCROW_TX_REJECTED')) throw e
    }
  }
  const status = await escrow.settlementStatus(job)
  if (!status.exists) return { status: 'already_settled', signature: null }
  const total = plan.provider + plan.client + plan.arbiter
  if (status.balance < total) {
    const unit = tokenUnitFor(escrow.mint)
    throw new KilnError(
      'ESCROW_NOT_FUNDED',
      `vault ${status.vault} holds ${formatAmount(status.balance, unit)}, the plan pays out ${formatAmount(total, unit)} (is the bond missing?)`,
      { jobId: job.jobId, balance: status.balance, total },
    )
  }
  const payouts = payoutsFor(plan, { client: job.client, provider: job.provider, feeTo: init.feeTo ?? escrow.arbiter })
  const { tx, expected } = await escrow.buildSettlement({ ...job, cosigner: plan.cosigner, payouts })
  const signed = await init.cosign({ tx, expected, cosigner: plan.cosigner, minPayout: plan[plan.cosigner] })
  const signature = settlementSignature(signed)
  await init.record?.({ signature, tx: signed, payouts: expected.payouts })
  try {
    await escrow.submitSettlement(signed)
  } catch (e) {
    if (isKilnError(e, 'ESCROW_TX_REJECTED') && !(await escrow.settlementStatus(job)).exists) {
      return { status: 'already_settled', signature: null }
    }
    throw e
  }
  return { status: 'settled', signature, payouts: expected.payouts }
}
