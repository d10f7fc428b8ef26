import { LAMPORTS_PER_SOL, PublicKey, type Connection } from '@solana/web3.js'
import { tokenBalance } from '@kiln/escrow'
import { formatAmount, maxLeaseCost, tokenUnitFor, type Address } from '@kiln/protocol'
import { resolveVerification } from '@kiln/verifier'
import type { Logger } from './log.ts'

/**
 * Whether the wallet can post a bond. A provider that cannot would accept matches and then
 * refuse every lease, so it advertises itself unavailable, saying why, until it is funded.
 */

/** What posting a bond costs in SOL: lockFunds asks for this much room for the fee. */
export const BOND_FEE_LAMPORTS = 10_000
/** The job spec's default timeout, to size the bond a typical job asks for. */
const TYPICAL_JOB_SEC = 600

export interface Funds {
  lamports: number
  /** Stablecoin, in base units. */
  tokens: number
}

const sol = (lamports: number) => String(lamports / LAMPORTS_PER_SOL)

/** The bond of a job with the default timeout at this price, under the marketplace's default bond ratio. */
export function typicalBond(pricePerHour: number): number {
  return resolveVerification(undefined, maxLeaseCost(pricePerHour, TYPICAL_JOB_SEC)).bond
}

/** Why these funds cannot post a bond (the advert's reason), or undefined when they can. */
export function fundsProblem(f: Funds): string | undefined {
  const missing = [
    ...(f.lamports < BOND_FEE_LAMPORTS
      ? [`${sol(f.lamports)} SOL (a bond's fee needs ${sol(BOND_FEE_LAMPORTS)})`]
      : []),
    ...(f.tokens < 1 ? ['no stablecoin for bonds'] : []),
  ]
  return missing.length ? `wallet not funded: ${missing.join(', ')}` : undefined
}

export interface FundingHelp {
  address: Address
  mint: Address
  rpcUrl: string
  pricePerHour: number
  /** The RPC is a Kiln devchain for this mint, whose faucet (kiln_fund) can fund the wallet. */
  devchain: boolean
}

/** What to send where, for the owner; on a devchain, the exact command. */
export function fundingHelp(h: FundingHelp): string[] {
  const bond = typicalBond(h.pricePerHour)
  const lines = [
    `to take jobs, send ${h.address} at least ${sol(BOND_FEE_LAMPORTS)} SOL for fees (0.01 lasts a while) and stablecoin of mint ${h.mint} for bonds: a ${TYPICAL_JOB_SEC / 60}-minute job at your price asks a bond of about ${formatAmount(bond, tokenUnitFor(h.mint))}, returned when it settles`,
  ]
  if (h.devchain) {
    const params = JSON.stringify([h.address, { lamports: LAMPORTS_PER_SOL, tokens: bond * 10 }])
    lines.push(
      `on this devchain: curl -s ${h.rpcUrl} -H 'content-type: application/json' -d '{"jsonrpc":"2.0","id":1,"method":"kiln_fund","params":${params}}'`,
    )
  }
  lines.push('it takes jobs by itself once the funds arrive (no restart needed)')
  return lines
}

/** True when `rpcUrl` is a Kiln devchain minting `mint` (it answers kiln_devInfo); never throws. */
export async function isDevchainFor(rpcUrl: string, mint: Address): Promise<boolean> {
  try {
    const res = await fetch(rpcUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      signal: AbortSignal.timeout(3000),
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'kiln_devInfo', params: [] }),
    })
    const body = (await res.json()) as { result?: { mint?: unknown } }
    return body.result?.mint === mint
  } catch {
    return false
  }
}

export interface WalletInit {
  connection: Connection
  mint: Address
  address: Address
  log: Logger
  /** How often a funded wallet is read again (an unfunded one: at every check). Default 60 s. */
  recheckMs?: number
}

/**
 * The wallet as the advert sees it. `check` reads the chain when due: at every call while
 * unfunded (so funding takes effect without a restart), else every `recheckMs`, and at once
 * after `stale()` (a bond posted, a settlement signed).
 */
export function createWallet(init: WalletInit) {
  const recheckMs = init.recheckMs ?? 60_000
  let funds: Funds | undefined
  let problem: string | undefined = 'wallet not checked yet'
  let checkedAt = 0
  let due = true
  return {
    async check(): Promise<void> {
      if (!due && problem === undefined && Date.now() - checkedAt < recheckMs) return
      try {
        const [lamports, held] = await Promise.all([
          init.connection.getBalance(new PublicKey(init.address), 'confirmed'),
          tokenBalance(init.connection, init.mint, init.address),
        ])
        funds = { lamports, tokens: held }
      } catch (e) {
        // A passing RPC failure says nothing about the funds: keep what we knew, if anything.
        if (funds === undefined) problem = `cannot read the wallet: ${(e as Error).message}`
        return
      }
      checkedAt = Date.now()
      due = false
      const next = fundsProblem(funds)
      if (next !== problem) init.log[next ? 'warn' : 'info']({ ...funds }, next ?? 'wallet funded: bonds can be posted')
      problem = next
    },
    stale(): void {
      due = true
    },
    funds: () => funds,
    problem: () => problem,
  }
}

export type Wallet = ReturnType<typeof createWallet>
