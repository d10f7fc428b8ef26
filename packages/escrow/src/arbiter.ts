import {
  createAssociatedTokenAccountIdempotentInstruction,
  createCloseAccountInstruction,
  createInitializeMultisigInstruction,
  createTransferCheckedInstruction,
  getAssociatedTokenAddressSync,
  unpackAccount,
  MULTISIG_SIZE,
} from '@solana/spl-token'
import { Transaction, type AccountInfo, type Connection, type TransactionInstruction } from '@solana/web3.js'
import { assertIsAddress, formatAmount, KilnError, tokenUnitFor, type Address, type Identity } from '@kiln/protocol'
import {
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
import {
  assertAmount,
  assertJobId,
  assertParties,
  multisigAddress,
  multisigSeed,
  MULTISIG_THRESHOLD,
  vaultAddress,
} from './derive.ts'

/** Solana's limit on a serialised transaction. */
const MAX_TX_BYTES = 1232

export interface JobParties {
  jobId: string
  client: Address
  provider: Address
}
export interface Payout {
  to: Address
  amount: number
}

/** What a built settlement does, for the coordinator to record and show the co-signer. */
export interface SettlementExpectation {
  jobId: string
  vault: Address
  multisig: Address
  mint: Address
  /** Who must add the second signature. */
  cosigner: Address
  /** Final amounts per recipient wallet, remainder to the client included. */
  payouts: Payout[]
  total: number
  blockhash: string
  lastValidBlockHeight: number
}

/** Names a run's vault: its escrow id and its client (whose lock creates it). */
export interface VaultKey {
  jobId: string
  client: Address
}

export interface SettlementStatus {
  vault: Address
  /** false once settled (the vault is closed in the settling transaction), or before the client's lock made it. */
  exists: boolean
  balance: number
}

export interface Escrow {
  readonly arbiter: Address
  readonly mint: Address
  prepareVault(p: JobParties): Promise<{ multisig: Address; vault: Address }>
  buildSettlement(
    p: JobParties & { cosigner: 'client' | 'provider'; payouts: Payout[] },
  ): Promise<{ tx: string; expected: SettlementExpectation }>
  submitSettlement(txBase64: string): Promise<string>
  /** A run's vault on chain. Its address needs the client too: the client's lock makes it. */
  settlementStatus(key: VaultKey): Promise<SettlementStatus>
}

/** The arbiter's (coordinator's) side of the escrow: creates multisigs, builds and submits settlements. */
export function createEscrow(init: { connection: Connection; arbiter: Identity; mint: Address }): Escrow {
  const { connection, arbiter } = init
  const mint = init.mint
  assertIsAddress(mint, 'mint')
  const signer = keypairOf(arbiter)
  const payer = signer.publicKey

  async function readPair(
    multisig: Address,
    vault: Address,
  ): Promise<[AccountInfo<Buffer> | null, AccountInfo<Buffer> | null]> {
    const [m, v] = await onChain('reading the escrow accounts', () =>
      connection.getMultipleAccountsInfo([pk(multisig), pk(vault)], COMMITMENT),
    )
    return [m ?? null, v ?? null]
  }

  function checkMultisig(p: JobParties, multisig: Address, m: AccountInfo<Buffer> | null): void {
    const problem = multisigProblem(multisig, m, { client: p.client, provider: p.provider, arbiter: arbiter.address })
    if (problem) throw new KilnError('ESCROW_WRONG_ACCOUNT', problem, { jobId: p.jobId, multisig })
  }
  function checkVault(p: JobParties, vault: Address, multisig: Address, v: AccountInfo<Buffer> | null): bigint {
    const r = inspectVault(vault, v, mint, multisig)
    if ('problem' in r) throw new KilnError('ESCROW_WRONG_ACCOUNT', r.problem, { jobId: p.jobId, vault })
    return r.balance
  }

  /**
   * Makes sure the pair's multisig exists (created once per triple, at the arbiter's expense:
   * a multisig can never be closed) and names the run's vault. The vault itself is not
   * created here: the client's lock creates and funds it in one transaction (`lockFunds`).
   */
  async function prepareVault(p: JobParties): Promise<{ multisig: Address; vault: Address }> {
    assertJobId(p.jobId)
    assertParties({ client: p.client, provider: p.provider, arbiter: arbiter.address })
    const multisig = multisigAddress(arbiter.address, p.client, p.provider)
    const vault = vaultAddress(arbiter.address, p.client, p.jobId)
    const read = () => onChain('reading the multisig', () => connection.getAccountInfo(pk(multisig), COMMITMENT))
    const m = await read()
    if (!unclaimed(m)) {
      checkMultisig(p, multisig, m)
      return { multisig, vault }
    }
    try {
      const rent = await onChain('reading rent', () => connection.getMinimumBalanceForRentExemption(MULTISIG_SIZE))
      const { blockhash } = await onChain('reading a blockhash', () => connection.getLatestBlockhash(COMMITMENT))
      const tx = new Transaction({ feePayer: payer, recentBlockhash: blockhash }).add(
        ...createWithSeedIxs(payer, multisig, multisigSeed(p.client, p.provider), MULTISIG_SIZE, rent, m),
        createInitializeMultisigInstruction(pk(multisig), [pk(p.client), pk(p.provider), payer], MULTISIG_THRESHOLD),
      )
      tx.sign(signer)
      await sendAndConfirm(connection, tx)
    } catch (e) {
      // A concurrent prepareVault may have created it first: what counts is the result.
      if (unclaimed(await read())) throw e
    }
    checkMultisig(p, multisig, await read())
    return { multisig, vault }
  }

  async function buildSettlement(
    p: JobParties & { cosigner: 'client' | 'provider'; payouts: Payout[] },
  ): Promise<{ tx: string; expected: SettlementExpectation }> {
    assertJobId(p.jobId)
    assertParties({ client: p.client, provider: p.provider, arbiter: arbiter.address })
    if (p.cosigner !== 'client' && p.cosigner !== 'provider')
      throw new KilnError('PAYLOAD_INVALID', 'cosigner must be "client" or "provider"')
    const merged = new Map<Address, number>()
    for (const [i, po] of p.payouts.entries()) {
      assertIsAddress(po.to, `payouts.${i}.to`)
      assertAmount(po.amount, `payouts.${i}.amount`)
      merged.set(po.to, (merged.get(po.to) ?? 0) + po.amount)
    }
    const multisig = multisigAddress(arbiter.address, p.client, p.provider)
    const vault = vaultAddress(arbiter.address, p.client, p.jobId)
    const [m, v] = await readPair(multisig, vault)
    if (!v) {
      throw new KilnError(
        'ESCROW_NOT_FUNDED',
        `job ${p.jobId} has no vault at ${vault}: it was settled already (the vault closes when settled) or never locked`,
        { jobId: p.jobId, vault },
      )
    }
    checkMultisig(p, multisig, m)
    const balance = toSafeNumber(checkVault(p, vault, multisig, v), 'vault balance')
    const total = [...merged.values()].reduce((a, b) => a + b, 0)
    if (total > balance)
      throw new KilnError(
        'ESCROW_NOT_FUNDED',
        `payouts total ${formatAmount(total, tokenUnitFor(mint))} but vault ${vault} holds ${formatAmount(balance, tokenUnitFor(mint))}`,
        { jobId: p.jobId, vault, total, balance },
      )
    if (balance > total) merged.set(p.client, (merged.get(p.client) ?? 0) + balance - total)

    const decimals = await mintDecimals(connection, mint)
    const cosigner = p.cosigner === 'client' ? p.client : p.provider
    const signers = [payer, pk(cosigner)]
    const ixs: TransactionInstruction[] = []
    const payouts: Payout[] = []
    for (const [to, amount] of merged) {
      if (amount === 0) continue
      payouts.push({ to, amount })
      const ata = getAssociatedTokenAddressSync(pk(mint), pk(to), true)
      ixs.push(createAssociatedTokenAccountIdempotentInstruction(payer, ata, pk(to), pk(mint)))
      ixs.push(
        createTransferCheckedInstruction(pk(vault), pk(mint), ata, pk(multisig), BigInt(amount), decimals, signers),
      )
    }
    // Closing in the same transaction empties the vault for good: nothing is left to pay twice.
    // Its rent goes back to the client, whose lock paid it.
    ixs.push(createCloseAccountInstruction(pk(vault), pk(p.client), pk(multisig), signers))
    const { blockhash, lastValidBlockHeight } = await onChain('reading a blockhash', () =>
      connection.getLatestBlockhash(COMMITMENT),
    )
    const tx = new Transaction({ feePayer: payer, recentBlockhash: blockhash }).add(...ixs)
    tx.partialSign(signer)
    const bytes = tx.serialize({ requireAllSignatures: false, verifySignatures: false })
    if (bytes.length > MAX_TX_BYTES)
      throw new KilnError(
        'PAYLOAD_INVALID',
        `settlement with ${payouts.length} payouts is ${bytes.length} bytes, over Solana's ${MAX_TX_BYTES}`,
        { jobId: p.jobId },
      )
    return {
      tx: bytes.toString('base64'),
      expected: {
        jobId: p.jobId,
        vault,
        multisig,
        mint,
        cosigner,
        payouts,
        total: balance,
        blockhash,
        lastValidBlockHeight,
      },
    }
  }

  async function submitSettlement(txBase64: string): Promise<string> {
    let tx: Transaction
    try {
      tx = Transaction.from(Buffer.from(txBase64, 'base64'))
    } catch (cause) {
      throw new KilnError('ESCROW_TX_REJECTED', 'settlement is not a serialised transaction', {}, { cause })
    }
    if (!tx.feePayer?.equals(payer))
      throw new KilnError('ESCROW_TX_REJECTED', 'settlement is not one this arbiter built (fee payer differs)')
    if (!tx.verifySignatures(true))
      throw new KilnError('ESCROW_TX_REJECTED', 'settlement is missing a signature or carries an invalid one')
    return sendAndConfirm(connection, tx)
  }

  async function settlementStatus(key: VaultKey): Promise<SettlementStatus> {
    const { jobId } = key
    const vault = vaultAddress(arbiter.address, key.client, jobId)
    const info = await onChain('reading the vault', () => connection.getAccountInfo(pk(vault), COMMITMENT))
    if (!info) return { vault, exists: false, balance: 0 }
    let amount: bigint
    try {
      const a = unpackAccount(pk(vault), info)
      if (a.mint.toBase58() !== mint) throw new Error('other mint')
      amount = a.amount
    } catch {
      throw new KilnError('ESCROW_WRONG_ACCOUNT', `${vault} is not a vault of ${mint}`, { jobId, vault })
    }
    return { vault, exists: true, balance: toSafeNumber(amount, 'vault balance') }
  }

  return { arbiter: arbiter.address, mint, prepareVault, buildSettlement, submitSettlement, settlementStatus }
}
