import {
  getAssociatedTokenAddressSync,
  unpackAccount,
  unpackMint,
  unpackMultisig,
  MULTISIG_SIZE,
  TOKEN_PROGRAM_ID,
} from '@solana/spl-token'
import {
  Keypair,
  PublicKey,
  SendTransactionError,
  SystemProgram,
  type AccountInfo,
  type Connection,
  type Transaction,
  type TransactionInstruction,
} from '@solana/web3.js'
import { addressFromPublicKey, KilnError, type Address, type Identity } from '@kiln/protocol'
import { MULTISIG_THRESHOLD, multisigSigners, type Parties } from './derive.ts'

export const COMMITMENT = 'confirmed' as const
const POLL_MS = 300
const RESEND_MS = 2_000

export const keypairOf = (id: Identity): Keypair => Keypair.fromSecretKey(id.exportSecretKey())
export const pk = (a: Address | string): PublicKey => new PublicKey(a)

/** Maps network failures to CHAIN_UNREACHABLE; anything else passes through. */
export async function onChain<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (e) {
    if (e instanceof KilnError || e instanceof SendTransactionError) throw e
    const text = `${(e as Error).message} ${String((e as { cause?: unknown }).cause ?? '')}`
    if (/fetch failed|ECONNREFUSED|ECONNRESET|ENOTFOUND|ETIMEDOUT|socket hang up/i.test(text)) {
      throw new KilnError('CHAIN_UNREACHABLE', `Solana RPC unreachable while ${what}`, {}, { cause: e })
    }
    throw e
  }
}

export function toSafeNumber(v: bigint, what: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER))
    throw new KilnError('ESCROW_WRONG_ACCOUNT', `${what} ${v} is beyond a safe integer`)
  return Number(v)
}

const decimalsCache = new Map<string, number>()
export async function mintDecimals(connection: Connection, mint: Address): Promise<number> {
  const cached = decimalsCache.get(mint)
  if (cached !== undefined) return cached
  const info = await onChain('reading the mint', () => connection.getAccountInfo(pk(mint), COMMITMENT))
  let decimals: number
  try {
    decimals = unpackMint(pk(mint), info).decimals
  } catch {
    throw new KilnError('ESCROW_WRONG_ACCOUNT', `${mint} is not an SPL Token mint`, { mint })
  }
  decimalsCache.set(mint, decimals)
  return decimals
}

/** Why a multisig account is not the 2-of-3 of exactly these parties, or undefined if it is. */
export function multisigProblem(
  address: Address,
  info: AccountInfo<Buffer> | null,
  parties: Parties,
): string | undefined {
  if (!info) return `multisig ${address} does not exist`
  if (!info.owner.equals(TOKEN_PROGRAM_ID) || info.data.length !== MULTISIG_SIZE)
    return `${address} is not an SPL Token multisig`
  const m = unpackMultisig(pk(address), info)
  const expected = multisigSigners(parties)
  const actual = [m.signer1, m.signer2, m.signer3].map((s) => s.toBase58())
  if (!m.isInitialized || m.m !== MULTISIG_THRESHOLD || m.n !== 3 || actual.some((s, i) => s !== expected[i])) {
    return `multisig ${address} is not the ${MULTISIG_THRESHOLD}-of-3 of client, provider and arbiter`
  }
  return undefined
}

/** A vault's balance, or why it is not a clean token account of `mint` held by `multisig`. */
export function inspectVault(
  address: Address,
  info: AccountInfo<Buffer> | null,
  mint: Address,
  multisig: Address,
): { balance: bigint } | { problem: string } {
  if (!info) return { problem: `vault ${address} does not exist` }
  if (!info.owner.equals(TOKEN_PROGRAM_ID)) return { problem: `vault ${address} is not an SPL Token account` }
  let a
  try {
    a = unpackAccount(pk(address), info)
  } catch {
    return { problem: `vault ${address} is not an SPL Token account` }
  }
  if (a.mint.toBase58() !== mint) return { problem: `vault ${address} holds ${a.mint.toBase58()}, not ${mint}` }
  if (a.owner.toBase58() !== multisig)
    return { problem: `vault ${address} is owned by ${a.owner.toBase58()}, not the parties' multisig ${multisig}` }
  // A delegate or close authority could move or reclaim funds outside the 2-of-3 rule.
  if (a.delegate) return { problem: `vault ${address} has a delegate` }
  if (a.closeAuthority) return { problem: `vault ${address} has a close authority` }
  if (a.isFrozen) return { problem: `vault ${address} is frozen` }
  if (a.isNative) return { problem: `vault ${address} is a native SOL account` }
  return { balance: a.amount }
}

/** Nothing lives at the address yet (it may hold lamports someone sent there). */
export const unclaimed = (info: AccountInfo<Buffer> | null): boolean =>
  !info || (info.owner.equals(SystemProgram.programId) && info.data.length === 0)

/**
 * Creates an SPL Token-owned account at `base`'s seed address, paid by `base`. Creating at a
 * seed address that someone pre-funded with lamports must still work (createAccount would
 * refuse it), so such an account is topped up, allocated and assigned instead.
 */
export function createWithSeedIxs(
  base: PublicKey,
  address: Address,
  seed: string,
  space: number,
  rent: number,
  existing: AccountInfo<Buffer> | null,
): TransactionInstruction[] {
  const common = { basePubkey: base, seed, programId: TOKEN_PROGRAM_ID }
  if (!existing)
    return [
      SystemProgram.createAccountWithSeed({
        fromPubkey: base,
        newAccountPubkey: pk(address),
        lamports: rent,
        space,
        ...common,
      }),
    ]
  const ixs: TransactionInstruction[] = []
  if (existing.lamports < rent)
    ixs.push(SystemProgram.transfer({ fromPubkey: base, toPubkey: pk(address), lamports: rent - existing.lamports }))
  ixs.push(
    SystemProgram.allocate({ accountPubkey: pk(address), space, ...common }),
    SystemProgram.assign({ accountPubkey: pk(address), ...common }),
  )
  return ixs
}

/** Token balance of `owner`'s associated token account (0 when it has none). */
export async function ataBalance(connection: Connection, mint: Address, owner: Address): Promise<bigint> {
  const ata = getAssociatedTokenAddressSync(pk(mint), pk(owner), true)
  const info = await onChain('reading a token balance', () => connection.getAccountInfo(ata, COMMITMENT))
  if (!info) return 0n
  return unpackAccount(ata, info).amount
}

/**
 * Sends a fully signed transaction and waits until it is confirmed, re-broadcasting while
 * its blockhash is valid (nodes may drop transactions). Idempotent: a transaction that
 * already landed returns its signature instead of failing as a duplicate.
 */
export async function sendAndConfirm(connection: Connection, tx: Transaction): Promise<string> {
  if (!tx.signature || !tx.recentBlockhash) throw new KilnError('ESCROW_TX_REJECTED', 'transaction is not signed')
  // Plain base58 of the fee payer's signature; protocol's encoder saves a direct bs58 dependency.
  const signature: string = addressFromPublicKey(tx.signature)
  const blockhash = tx.recentBlockhash
  const raw = tx.serialize()
  const landed = async (): Promise<boolean> => {
    const st = (
      await onChain('confirming', () =>
        connection.getSignatureStatuses([signature], { searchTransactionHistory: true }),
      )
    ).value[0]
    if (!st || (st.confirmationStatus !== 'confirmed' && st.confirmationStatus !== 'finalized')) return false
    if (st.err)
      throw new KilnError('ESCROW_TX_REJECTED', `transaction ${signature} failed on chain: ${JSON.stringify(st.err)}`, {
        signature,
        err: st.err,
      })
    return true
  }
  if (await landed()) return signature
  try {
    await onChain('sending', () => connection.sendRawTransaction(raw, { preflightCommitment: COMMITMENT }))
  } catch (e) {
    if (await landed()) return signature
    if (e instanceof SendTransactionError) {
      throw new KilnError(
        'ESCROW_TX_REJECTED',
        e.transactionError.message,
        { signature, logs: e.transactionError.logs ?? [] },
        { cause: e },
      )
    }
    throw e
  }
  let lastSend = Date.now()
  for (;;) {
    if (await landed()) return signature
    const valid = (
      await onChain('confirming', () => connection.isBlockhashValid(blockhash, { commitment: 'processed' }))
    ).value
    if (!valid) {
      if (await landed()) return signature
      throw new KilnError('ESCROW_TX_REJECTED', `transaction ${signature} expired before it was confirmed`, {
        signature,
      })
    }
    if (Date.now() - lastSend > RESEND_MS) {
      lastSend = Date.now()
      await connection.sendRawTransaction(raw, { skipPreflight: true }).catch(() => undefined)
    }
    await new Promise((r) => setTimeout(r, POLL_MS))
  }
}
