import {
  amount as amountSchema,
  KilnError,
  leaseCost,
  moneyFormat,
  parseOrThrow,
  TEST_TOKEN,
  type Address,
  type TokenUnit,
} from '@kiln/protocol'
import type { Payout } from './arbiter.ts'

/**
 * How a run ended, as far as money goes:
 * verified: the work was done (and, if spot-checked, agreed with): paid for its seconds.
 * failed_client: the job's own program failed or ran past its timeout: still paid for its seconds.
 * cancelled: the client stopped it: paid pro rata for the seconds it ran (0 before start).
 * failed_provider: the provider's side failed (image, Docker, lease refused, lost): full refund.
 * timeout: the lease lapsed without a result: full refund.
 * caught: the verifier's majority found the output wrong: full refund and the bond to the client.
 */
export type SettlementOutcome = 'verified' | 'failed_client' | 'cancelled' | 'failed_provider' | 'timeout' | 'caught'
export const SETTLEMENT_OUTCOMES: readonly SettlementOutcome[] = [
  'verified',
  'failed_client',
  'cancelled',
  'failed_provider',
  'timeout',
  'caught',
]

export interface SettlementPlanInput {
  /** The client's payment in the vault (token base units). */
  lock: number
  /** The provider's bond in the same vault (0 when none was posted). */
  bond: number
  pricePerHour: number
  /** From the provider's signed receipt. */
  containerSeconds: number
  outcome: SettlementOutcome
  /** The marketplace's cut of paid work, in basis points (100 = 1%). */
  feeBps: number
  /** The unit the lines name (default: the devchain's test stablecoin). */
  token?: TokenUnit
}

export interface SettlementPlan {
  outcome: SettlementOutcome
  action: 'release' | 'split' | 'refund' | 'slash'
  /** What the run earned: its seconds at its price, rounded up, at most the lock; 0 when refunded. */
  work: number
  /** The marketplace fee, taken from the work's pay, never from a refund or a bond. */
  fee: number
  /** Token base units per party; provider + client + arbiter = lock + bond, always. */
  provider: number
  client: number
  arbiter: number
  bondReturned: number
  bondSlashed: number
  /**
   * Who co-signs with the arbiter: the party that gives something up would refuse, so the
   * other one signs. The provider, whose pay or bond is in it, for a release, split or
   * refund (client + arbiter can also sign a refund when the provider is gone); the client
   * for a slash, which the provider would never sign.
   */
  cosigner: 'client' | 'provider'
  /** One line per amount, for the job page and the CLI. */
  lines: string[]
}

const PAID: ReadonlySet<SettlementOutcome> = new Set(['verified', 'failed_client', 'cancelled'])

function check(input: SettlementPlanInput): void {
  parseOrThrow(amountSchema, input.lock, 'lock')
  parseOrThrow(amountSchema, input.bond, 'bond')
  parseOrThrow(amountSchema, input.pricePerHour, 'pricePerHour')
  if (!Number.isInteger(input.feeBps) || input.feeBps < 0 || input.feeBps > 10_000) {
    throw new KilnError('PAYLOAD_INVALID', `feeBps must be an integer in [0, 10000], got ${input.feeBps}`, {
      issues: [{ path: 'feeBps', message: 'out of range', expected: '0..10000' }],
    })
  }
  if (!(Number.isFinite(input.containerSeconds) && input.containerSeconds >= 0)) {
    throw new KilnError(
      'PAYLOAD_INVALID',
      `containerSeconds must be a non-negative number, got ${input.containerSeconds}`,
    )
  }
  if (!SETTLEMENT_OUTCOMES.includes(input.outcome))
    throw new KilnError('PAYLOAD_INVALID', `unknown settlement outcome ${String(input.outcome)}`)
  if (input.lock + input.bond > Number.MAX_SAFE_INTEGER)
    throw new KilnError('PAYLOAD_INVALID', 'lock + bond is beyond a safe integer')
}

/** Who gets what out of one vault (lock + bond). Pure: the chain is only touched to carry it out. */
export function planSettlement(input: SettlementPlanInput): SettlementPlan {
  check(input)
  const { lock, bond, outcome } = input
  const work = PAID.has(outcome) ? leaseCost(input.pricePerHour, input.containerSeconds, lock) : 0
  // Rounded down (BigInt: work * feeBps can pass 2^53): never more than its rate of the pay.
  const fee = Number((BigInt(work) * BigInt(input.feeBps)) / 10_000n)
  const caught = outcome === 'caught'
  const plan = {
    outcome,
    action: caught
      ? ('slash' as const)
      : work === 0
        ? ('refund' as const)
        : work === lock
          ? ('release' as const)
          : ('split' as const),
    work,
    fee,
    provider: caught ? 0 : work - fee + bond,
    client: caught ? lock + bond : lock - work,
    arbiter: fee,
    bondReturned: caught ? 0 : bond,
    bondSlashed: caught ? bond : 0,
    cosigner: caught ? ('client' as const) : ('provider' as const),
  }
  const m = moneyFormat(input.token ?? TEST_TOKEN)
  const bondLine =
    bond === 0
      ? ''
      : caught
        ? `; its bond ${m.amount(bond)} slashed to the client`
        : ` + its bond ${m.amount(bond)} returned`
  const lines = [
    `outcome: ${outcome} (${plan.action})`,
    `paid for the work: ${m.amount(work)} for ${input.containerSeconds.toFixed(1)} s at ${m.rate(input.pricePerHour)}, out of a lock of ${m.amount(lock)}`,
    `marketplace fee: ${m.amount(fee)} (${(input.feeBps / 100).toFixed(2)}% of the work's pay)`,
    `to the provider: ${m.amount(plan.provider)} (${m.amount(caught ? 0 : work - fee)} for the work${bondLine})`,
    `to the client: ${m.amount(plan.client)} (${m.amount(lock - work)} of its lock back${caught ? ` + the slashed bond ${m.amount(bond)}` : ''})`,
  ]
  return { ...plan, lines }
}

/** The plan as buildSettlement's payouts; zero amounts are left out. */
export function payoutsFor(plan: SettlementPlan, to: { client: Address; provider: Address; feeTo: Address }): Payout[] {
  return [
    { to: to.provider, amount: plan.provider },
    { to: to.client, amount: plan.client },
    { to: to.feeTo, amount: plan.arbiter },
  ].filter((p) => p.amount > 0)
}
