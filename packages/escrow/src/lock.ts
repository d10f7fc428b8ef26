import {
  createInitializeAccount3Instruction,
  createTransferCheckedInstruction,
  getAssociatedTokenAddressSync,
  ACCOUNT_SIZE,
} from '@solana/spl-token'
import { Transaction, type AccountInfo, type Connection, type TransactionInstruction } from '@solana/web3.js'
import {
  assertIsAddress,
  formatAmount,
  KilnError,
  tokenUnitFor,
  type Address,
  type Identity,
  type TokenUnit,
} from '@kiln/protocol'
import {
  ataBalance,
  COMMITMENT,
  createWithSeedIxs,
  inspectVault,
  keypairOf,
  mintDecimals,
  multisigProblem,
  onChain,
  pk,
  sendAndConfirm,
  toSafeNumber,
  unclaimed,
} from './chain.ts'
import { assertAmount, assertParties, multisigAddress, vaultAddress, vaultSeed } from './derive.ts'

/** Lamports a lock needs besides any rent: the transaction fee, with room to spare. */
const FEE_ROOM = 10_000

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
 * Checks that `vault` is this job's vault (derived from arbiter, client and job id, so it
 * cannot be shared with another lease), a clean token account of `mint`, owned by the 2-of-3
 * multisig of exactly these three parties, and holds at least `amount`.
 */
export async function checkLock(connection: Connection, ref: VaultRef & { amount: number }): Promise<LockCheck> {
  assertAmount(ref.amount)
  const r = await readVault(connection, ref)
  if ('reason' in r) return { ok: false, reason: r.reason }
  if ('problem' in r.vault) return { ok: false, reason: r.vault.problem }
  const balance = toSafeNumber(r.vault.balance, 'vault balance')
  if (balance < ref.amount)
    return {
      ok: false,
      reason: `vault ${ref.vault} holds ${formatAmount(balance, tokenUnitFor(ref.mint))}, less than ${formatAmount(ref.amount, tokenUnitFor(ref.mint))}`,
    }
  return { ok: true, balance }
}

type VaultRead = { reason: string } | { info: AccountInfo<Buffer> | null; vault: ReturnType<typeof inspectVault> }

/** The vault and its multisig, checked: the multisig must be right before anything goes in. */
async function readVault(connection: Connection, ref: VaultRef): Promise<VaultRead> {
  assertParties(ref)
  assertIsAddress(ref.mint, 'mint')
  const expectedVault = vaultAddress(ref.arbiter, ref.client, ref.jobId)
  if (ref.vault !== expectedVault)
    return { reason: `vault ${ref.vault} is not job ${ref.jobId}'s vault (${expectedVault})` }
  const multisig = multisigAddress(ref.arbiter, ref.client, ref.provider)
  const [v, m] = await onChain('reading the vault', () =>
    connection.getMultipleAccountsInfo([pk(ref.vault), pk(multisig)], COMMITMENT),
  )
  const problem = multisigProblem(multisig, m ?? null, ref)
  if (problem) return { reason: problem }
  return { info: v ?? null, vault: inspectVault(ref.vault, v ?? null, ref.mint, multisig) }
}

/** `owner`'s stablecoin balance in base units (its associated token account; 0 if none). */
export async function tokenBalance(connection: Connection, mint: Address, owner: Address): Promise<number> {
  return toSafeNumber(await ataBalance(connection, mint, owner), 'token balance')
}

/**
 * Moves `amount` from `from`'s associated token account into the job's vault (the client's
 * payment, or a provider's bond), signed and paid for by `from`, and waits for confirmation.
 * The multisig is verified first: funds only go into a vault of the 2-of-3 of these parties.
 * The client's lock creates the vault in the same transaction (it pays the rent, which the
 * settlement returns to it), so the vault is made, owned by the multisig and funded at once;
 * anyone else only adds to a vault that exists and checks out.
 * Not idempotent by itself: check the vault's balance (checkLock) before locking again.
 */
export async function lockFunds(
  init: VaultRef & { connection: Connection; from: Identity; amount: number; token?: TokenUnit },
): Promise<string> {
  const { connection, from, amount } = init
  assertAmount(amount)
  if (amount === 0) throw new KilnError('PAYLOAD_INVALID', 'nothing to lock: amount is 0')
  const read = await readVault(connection, init)
  const refuse = (reason: string) =>
    new KilnError('ESCROW_WRONG_ACCOUNT', `refusing to lock funds: ${reason}`, { jobId: init.jobId, vault: init.vault })
  if ('reason' in read) throw refuse(read.reason)
  const create = unclaimed(read.info)
  if (create && from.address !== init.client)
    throw refuse(`vault ${init.vault} does not exist yet; only the client's lock creates it`)
  if (!create && 'problem' in read.vault) throw refuse(read.vault.problem)
  const rent = create
    ? await onChain('reading rent', () => connection.getMinimumBalanceForRentExemption(ACCOUNT_SIZE))
    : 0
  const available = await tokenBalance(connection, init.mint, from.address)
  if (available < amount) {
    const unit = init.token ?? tokenUnitFor(init.mint)
    throw new KilnError(
      'INSUFFICIENT_FUNDS',
      `${from.address} holds ${formatAmount(available, unit)}, needs ${formatAmount(amount, unit)} to lock`,
      { needed: amount, available, mint: init.mint },
    )
  }
  const lamports = await onChain('reading SOL balance', () => connection.getBalance(pk(from.address), COMMITMENT))
  if (lamports < FEE_ROOM + rent) {
    const what = rent
      ? `the transaction fee and the vault's rent (${rent}, returned at settlement)`
      : 'the transaction fee'
    throw new KilnError('INSUFFICIENT_FUNDS', `${from.address} has ${lamports} lamports, not enough SOL for ${what}`, {
      lamports,
      needed: FEE_ROOM + rent,
    })
  }
  const decimals = await mintDecimals(connection, init.mint)
  const source = getAssociatedTokenAddressSync(pk(init.mint), pk(from.address), true)
  const ixs: TransactionInstruction[] = []
  if (create) {
    const multisig = multisigAddress(init.arbiter, init.client, init.provider)
    ixs.push(
      ...createWithSeedIxs(
        pk(from.address),
        init.vault,
        vaultSeed(init.arbiter, init.jobId),
        ACCOUNT_SIZE,
        rent,
        read.info,
      ),
    )
    ixs.push(createInitializeAccount3Instruction(pk(init.vault), pk(init.mint), pk(multisig)))
  }
  const { blockhash } = await onChain('reading a blockhash', () => connection.getLatestBlockhash(COMMITMENT))
  const tx = new Transaction({ feePayer: pk(from.address), recentBlockhash: blockhash }).add(
    ...ixs,
    createTransferCheckedInstruction(source, pk(init.mint), pk(init.vault), pk(from.address), BigInt(amount), decimals),
  )
  tx.sign(keypairOf(from))
  return sendAndConfirm(connection, tx)
}
