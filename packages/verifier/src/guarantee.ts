import { KilnError, moneyFormat, TEST_TOKEN, type TokenUnit } from '@kiln/protocol'

export interface GuaranteeInput {
  /** Spot-check probability. */
  p: number
  /** The provider's slashable bond per run (token base units). */
  bond: number
  /** What the client pays for one run (token base units). */
  pricePerJob: number
  /** What a cheater saves per job by not doing the work; at most the whole price, the default. */
  saving?: number
  /** How many cheats the detection chance is quoted for (default 20). */
  k?: number
  /** Share of checked jobs whose two runs disagree and need a third (default 0: honest majority). */
  tiebreakRate?: number
  /** The unit the quote lines name (default: the devchain's test stablecoin). */
  token?: TokenUnit
  /**
   * The price and bond are the client's ceiling (its max price), not a matched provider's: the
   * lines then say "at most". Bond, saving and price all scale with the price, so the verdict holds.
   */
  ceiling?: boolean
}

export interface Guarantee {
  /** Chance that a provider cheating k times is caught at least once: 1-(1-p)^k. */
  detectK: number
  k: number
  /** What one cheat costs in expectation: p*S. */
  expectedPenalty: number
  /** What one cheat earns in expectation: (1-p)*G. */
  expectedGain: number
  /** True when (1-p)*G >= p*S, i.e. cheating is not a losing bet. */
  cheatingPays: boolean
  /** The smallest bond (base units) for which cheating loses money at this p. */
  minDeterringBond: number
  /** Expected compute, hence expected cost, over one run: 1 + p (+ p * tiebreakRate). */
  expectedCostFactor: number
  expectedCost: number
  /** Ready to show before the client pays. */
  quoteLines: string[]
}

const pct = (x: number): string => `${(x * 100).toFixed(1)}%`

function check(name: string, v: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!(Number.isFinite(v) && v >= 0 && v <= max))
    throw new KilnError('PAYLOAD_INVALID', `${name} must be a number in [0, ${max}], got ${v}`)
}

/**
 * What verification buys the client, from the spot-check probability, the bond and the
 * price (ARCHITECTURE "Verification economics"). A cheater saves at most what it is paid,
 * so the saving defaults to the price: the quote is then the worst case.
 */
export function guarantee(input: GuaranteeInput): Guarantee {
  const { p, bond, pricePerJob } = input
  const k = input.k ?? 20
  const saving = input.saving ?? pricePerJob
  const tiebreakRate = input.tiebreakRate ?? 0
  check('p', p, 1)
  check('bond', bond)
  check('pricePerJob', pricePerJob)
  check('saving', saving)
  check('tiebreakRate', tiebreakRate, 1)
  if (!Number.isInteger(k) || k < 1) throw new KilnError('PAYLOAD_INVALID', `k must be a positive integer, got ${k}`)
  const detectK = 1 - (1 - p) ** k
  const expectedPenalty = p * bond
  const expectedGain = (1 - p) * saving
  const cheatingPays = !(expectedPenalty > expectedGain)
  // p*S > (1-p)*G  <=>  S > (1-p)*G/p; with p = 0 no bond deters.
  const minDeterringBond = p === 0 ? Infinity : Math.floor(((1 - p) * saving) / p) + 1
  const expectedCostFactor = 1 + p + p * tiebreakRate
  // An expectation, not a charge: rounded to the nearest base unit.
  const expectedCost = Math.round(pricePerJob * expectedCostFactor)
  const money = moneyFormat(input.token ?? TEST_TOKEN).amount
  const most = input.ceiling ? 'at most ' : ''
  const quoteLines = [
    `spot-check: ${pct(p)} of jobs are re-run on an independent provider; the provider cannot tell which`,
    `chance to catch a provider that cheats ${k} times: ${pct(detectK)}`,
    `provider bond: ${most}${money(bond)}; expected loss per cheat ${money(expectedPenalty)} vs expected gain ${money(expectedGain)}: ` +
      (!cheatingPays
        ? 'cheating does not pay'
        : p === 0
          ? 'cheating PAYS (nothing is checked)'
          : `cheating PAYS (a bond of ${money(minDeterringBond)} would deter it)`),
    `expected cost: ${most}${money(pricePerJob)} x ${expectedCostFactor.toFixed(3)} = ${money(expectedCost)} (re-runs are paid leases too; a caught cheater's bond comes to you)`,
  ]
  return {
    detectK,
    k,
    expectedPenalty,
    expectedGain,
    cheatingPays,
    minDeterringBond,
    expectedCostFactor,
    expectedCost,
    quoteLines,
  }
}
