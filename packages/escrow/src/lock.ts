import { createTransferCheckedInstruction, getAssociatedTokenAddressSync } from '@solana/spl-token'
import { Transaction, type Connection } from '@solana/web3.js'
import { assertIsAddress, KilnError, type Address, type Identity } from '@kiln/protocol'
import { ataBalance, COMMITMENT, inspectVault, keypairOf, mintDecimals, multisigProblem, onChain, pk, sendAndConfirm, toSafeNumber } from './chain.ts'
import { assertAmount, assertParties, multisigAddress, vaultAddress } from './derive.ts'

/** A job's vault as a lease names it: enough for any party to check it independently. */
export interface VaultRef {
  jobId: string
  mint: Address
  vault: Address
  client: Address
  provider: Address
  arbiter: Address
}

export type LockCheck = { ok: true; balance: number } | { ok: false; reason: string }

/**
 * Checks that `vault` is this job's vault (derived from arbiter + job id, so it cannot be
 * shared with another lease), a clean token account of `mint`, owned by the 2-of-3 multisig
 * of exactly these three parties, and holds at least `amount`.
 */
export async function checkLock(connection: Connection, ref: VaultRef & { amount: number }): Promise<LockCheck> {
  assertParties(ref)
  assertIsAddress(ref.mint, 'mint')
  assertAmount(ref.amount)
  const expectedVault = vaultAddress(ref.arbiter, ref.jobId)
  if (ref.vault !== expectedVault) return { ok: false, reason: `vault ${ref.vault} is not job ${ref.jobId}'s vault (${expectedVault})` }
  const multisig = multisigAddress(ref.arbiter, ref.client, ref.provider)
  const [v, m] = await onChain('reading the vault', () => connection.getMultipleAccountsInfo([pk(ref.vault), pk(multisig)], COMMITMENT))
  const problem = multisigProblem(multisig, m ?? null, ref)
  if (problem) return { ok: false, reason: problem }
  const r = inspectVault(ref.vault, v ?? null, ref.mint, multisig)
  if ('problem' in r) return { ok: false, reason: r.problem }
  const balance = toSafeNumber(r.balance, 'vault balance')
  if (balance < ref.amount) return { ok: false, reason: `vault ${ref.vault} holds ${balance}, less than ${ref.amount}` }
  return { ok: true, balance }
}

/** `owner`'s stablecoin balance in base units (its associated token account; 0 if none). */
export async function tokenBalance(connection: Connection, mint: Address, owner: Address): Promise<number> {
  return toSafeNumber(await ataBalance(connection, mint, owner), 'token balance')
}

/**
 * Moves `amount` from `from`'s associated token account into the job's vault (the client's
 * payment, or a provider's bond), signed and paid for by `from`, and waits for confirmation.
 * The vault is verified first: funds only go into a 2-of-3 vault that includes these parties.
 * Not idempotent by itself: check the vault's balance (checkLock) before locking again.
 */
export async function lockFunds(init: VaultRef & { connection: Connection; from: Identity; amount: number }): Promise<string> {
  const { connection, from, amount } = init
  assertAmount(amount)
  if (amount === 0) throw new KilnError('PAYLOAD_INVALID', 'nothing to lock: amount is 0')
  const vaultCheck = await checkLock(connection, { ...init, amount: 0 })
  if (!vaultCheck.ok) throw new KilnError('ESCROW_WRONG_ACCOUNT', `refusing to lock funds: ${vaultCheck.reason}`, { jobId: init.jobId, vault: init.vault })
  const available = await tokenBalance(connection, init.mint, from.address)
  if (available < amount) {
    throw new KilnError('INSUFFICIENT_FUNDS', `${from.address} has ${available} token base units, needs ${amount} to lock`, { needed: amount, available, mint: init.mint })
  }
  const lamports = await onChain('reading SOL balance', () => connection.getBalance(pk(from.address), COMMITMENT))
  if (lamports < 10_000) {
    throw new KilnError('INSUFFICIENT_FUNDS', `${from.address} has ${lamports} lamports, not enough SOL for the transaction fee`, { lamports })
  }
  const decimals = await mintDecimals(connection, init.mint)
  const source = getAssociatedTokenAddressSync(pk(init.mint), pk(from.address), true)
  const { blockhash } = await onChain('reading a blockhash', () => connection.getLatestBlockhash(COMMITMENT))
  const tx = new Transaction({ feePayer: pk(from.address), recentBlockhash: blockhash }).add(
    createTransferCheckedInstruction(source, pk(init.mint), pk(init.vault), pk(from.address), BigInt(amount), decimals),
  )
  tx.sign(keypairOf(from))
  return sendAndConfirm(connection, tx)
}
