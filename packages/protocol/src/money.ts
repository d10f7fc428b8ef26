// Imports nothing: the web app bundles this file for the browser (@kiln/protocol/money).

/**
 * Money is counted in the stablecoin's base units (6 decimals, like USDC): 1_000_000 = 1.00.
 * Integers only; amounts stay well inside Number.MAX_SAFE_INTEGER.
 */
export const TOKEN_DECIMALS = 6
export const TOKEN_UNIT = 10 ** TOKEN_DECIMALS

/** The stablecoin a marketplace settles in, as its network info names it. */
export interface TokenUnit {
  /** What amounts are shown with: "USDC" on a real cluster, "tUSDC" on the devchain. */
  symbol: string
  decimals: number
}

/** Circle's USDC mints (mainnet-beta, devnet): a marketplace settling in one of them says USDC. */
export const USDC_MINTS: readonly string[] = [
  'EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v',
  '4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU',
]

/** Any other mint is taken for a test stablecoin (the devchain's), and said so: t for test. */
export const TEST_TOKEN: TokenUnit = { symbol: 'tUSDC', decimals: TOKEN_DECIMALS }

/** The unit of `mint`; `symbol` (the marketplace's KILN_TOKEN_SYMBOL) names another real coin. */
export function tokenUnitFor(mint: string, symbol?: string): TokenUnit {
  return { symbol: symbol ?? (USDC_MINTS.includes(mint) ? 'USDC' : TEST_TOKEN.symbol), decimals: TOKEN_DECIMALS }
}

/** Never fewer decimals than cents, so 1.50 does not read as 1.5 or 1 as a count. */
const MIN_DECIMALS = 2

/**
 * An amount in base units, as people read it: 1_500_000 → "1.50 USDC", 5 → "0.000005 USDC",
 * 1_234_000_000 → "1,234.00 USDC". Exact to the base unit (trailing zeros trimmed down to two
 * decimals, nothing rounded away), so the smallest job cost never shows as 0.00. A fraction
 * of a base unit (an expectation such as p x bond) is rounded to the nearest unit.
 */
export function formatAmount(units: number | bigint, unit: TokenUnit): string {
  const n = typeof units === 'bigint' ? units : BigInt(Math.round(units))
  const abs = n < 0n ? -n : n
  const scale = 10n ** BigInt(unit.decimals)
  const whole = (abs / scale).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',')
  const frac = (abs % scale)
    .toString()
    .padStart(unit.decimals, '0')
    .replace(/0+$/, '')
    .padEnd(Math.min(MIN_DECIMALS, unit.decimals), '0')
  return `${n < 0n ? '-' : ''}${whole}${frac ? `.${frac}` : ''} ${unit.symbol}`
}

/** A price per hour: "0.36 USDC/h". */
export function formatRate(unitsPerHour: number, unit: TokenUnit): string {
  return `${formatAmount(unitsPerHour, unit)}/h`
}

/** One unit's formatters, for code that shows many amounts; null or undefined shows as "-". */
export function moneyFormat(unit: TokenUnit) {
  return {
    unit,
    amount: (units: number | bigint | null | undefined): string =>
      units === null || units === undefined ? '-' : formatAmount(units, unit),
    rate: (unitsPerHour: number | null | undefined): string =>
      unitsPerHour === null || unitsPerHour === undefined ? '-' : formatRate(unitsPerHour, unit),
  }
}
export type MoneyFormat = ReturnType<typeof moneyFormat>
