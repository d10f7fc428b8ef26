import {
  decodeCloseAccountInstruction,
  decodeTransferCheckedInstruction,
  getAssociatedTokenAddressSync,
  ASSOCIATED_TOKEN_PROGRAM_ID,
  TOKEN_PROGRAM_ID,
  TokenInstruction,
} from '@solana/spl-token'
import { SystemProgram, Transaction, type TransactionInstruction } from '@solana/web3.js'
import { assertIsAddress, KilnError, type Address, type Identity } from '@kiln/protocol'
import { keypairOf, pk } from './chain.ts'

export interface CosignExpectation {
  vault: Address
  mint: Address
  /** The co-signer's own floor: at least this much must go to `to`'s associated token account. */
  minPayout?: { to: Address; amount: number }
}

/** What a settlement transaction does, decoded and checked against the whitelist. */
export interface DecodedSettlement {
  /** Token base units per destination token account. */
  transfers: Map<string, bigint>
  closesVault: boolean
}

const ATA_CREATE_IDEMPOTENT = 1

function refuse(reason: string): never {
  throw new KilnError('SETTLEMENT_REFUSED', `settlement refused: ${reason}`, { reason })
}

function checkAtaCreate(ix: TransactionInstruction, i: number, mint: Address): void {
  if (ix.data.length !== 1 || ix.data[0] !== ATA_CREATE_IDEMPOTENT)
    refuse(`instruction ${i} is an associated-token-account call other than idempotent create`)
  const [, ata, owner, ixMint, system, token] = ix.keys
  if (!ata || !owner || !ixMint || !system || !token) refuse(`instruction ${i} lacks accounts`)
  if (ixMint.pubkey.toBase58() !== mint) refuse(`instruction ${i} creates an account for another mint`)
  if (!system.pubkey.equals(SystemProgram.programId) || !token.pubkey.equals(TOKEN_PROGRAM_ID))
    refuse(`instruction ${i} names unexpected programs`)
  if (!ata.pubkey.equals(getAssociatedTokenAddressSync(pk(mint), owner.pubkey, true)))
    refuse(`instruction ${i} creates a non-associated account`)
}

/**
 * Where the co-signer's own key may appear in a settlement: as the owner of a token account
 * being created, as a multisig signer, or where a closed vault's rent goes (the client, whose
 * lock paid it). Anywhere else (a payer, a source) it would spend the signer's own. Positions,
 * not the writable flag: a compiled message marks a key writable in every instruction once
 * any one writes to it, and the close makes the client's key writable.
 */
function harmlessSlot(ix: TransactionInstruction, at: number): boolean {
  if (ix.programId.equals(ASSOCIATED_TOKEN_PROGRAM_ID)) return at === 2
  if (!ix.programId.equals(TOKEN_PROGRAM_ID)) return false
  if (ix.data[0] === TokenInstruction.TransferChecked) return at >= 4
  if (ix.data[0] === TokenInstruction.CloseAccount) return at === 1 || at >= 3
  return false
}

/**
 * Decodes a settlement and refuses anything but: idempotent ATA creation, transferChecked
 * out of the vault, and closing the vault (exactly once, so all of it is distributed).
 * Anything else (an Approve, a SetAuthority, another program) could leave a way to move
 * funds later or spend the signer's own, so it is refused whole.
 */
export function decodeSettlement(
  tx: Transaction,
  expect: { vault: Address; mint: Address },
  signer?: Address,
): DecodedSettlement {
  const transfers = new Map<string, bigint>()
  let closes = 0
  if (tx.instructions.length === 0) refuse('the transaction is empty')
  for (const [i, ix] of tx.instructions.entries()) {
    if (ix.programId.equals(ASSOCIATED_TOKEN_PROGRAM_ID)) {
      checkAtaCreate(ix, i, expect.mint)
      continue
    }
    if (!ix.programId.equals(TOKEN_PROGRAM_ID)) refuse(`instruction ${i} calls program ${ix.programId.toBase58()}`)
    if (ix.data[0] === TokenInstruction.TransferChecked) {
      let d
      try {
        d = decodeTransferCheckedInstruction(ix)
      } catch {
        refuse(`instruction ${i} is a malformed transfer`)
      }
      if (d.keys.source.pubkey.toBase58() !== expect.vault)
        refuse(`instruction ${i} transfers from ${d.keys.source.pubkey.toBase58()}, not the vault`)
      if (d.keys.mint.pubkey.toBase58() !== expect.mint) refuse(`instruction ${i} transfers another mint`)
      const dest = d.keys.destination.pubkey.toBase58()
      transfers.set(dest, (transfers.get(dest) ?? 0n) + d.data.amount)
    } else if (ix.data[0] === TokenInstruction.CloseAccount) {
      let d
      try {
        d = decodeCloseAccountInstruction(ix)
      } catch {
        refuse(`instruction ${i} is a malformed close`)
      }
      if (d.keys.account.pubkey.toBase58() !== expect.vault)
        refuse(`instruction ${i} closes an account other than the vault`)
      closes++
    } else {
      refuse(`instruction ${i} is token instruction ${ix.data[0]}, not part of a settlement`)
    }
  }
  if (closes !== 1) refuse('the settlement must close the vault exactly once, so nothing stays locked')
  for (const [i, ix] of tx.instructions.entries()) {
    if (signer && ix.keys.some((k, at) => k.pubkey.toBase58() === signer && !harmlessSlot(ix, at)))
      refuse(`instruction ${i} would write to or spend from the co-signer's own account`)
  }
  return { transfers, closesVault: true }
}

/**
 * The co-signer's side (provider for a release, client for a refund): verifies the
 * arbiter-built settlement against the signer's own expectation, then adds its signature.
 * Returns the transaction (base64) for the arbiter to submit.
 */
export function cosignSettlement(init: { tx: string; signer: Identity; expect: CosignExpectation }): string {
  const { expect, signer } = init
  assertIsAddress(expect.vault, 'expect.vault')
  assertIsAddress(expect.mint, 'expect.mint')
  let tx: Transaction
  try {
    tx = Transaction.from(Buffer.from(init.tx, 'base64'))
  } catch {
    refuse('not a serialised transaction')
  }
  if (tx.feePayer?.toBase58() === signer.address) refuse('the co-signer would pay the fee')
  if (!tx.signatures.some((s) => s.publicKey.toBase58() === signer.address))
    refuse('the transaction does not ask for this signer')
  const decoded = decodeSettlement(tx, expect, signer.address)
  if (expect.minPayout) {
    assertIsAddress(expect.minPayout.to, 'expect.minPayout.to')
    const ata = getAssociatedTokenAddressSync(pk(expect.mint), pk(expect.minPayout.to), true).toBase58()
    const paid = decoded.transfers.get(ata) ?? 0n
    if (paid < BigInt(expect.minPayout.amount))
      refuse(`pays ${paid} to ${expect.minPayout.to}, expected at least ${expect.minPayout.amount}`)
  }
  tx.partialSign(keypairOf(signer))
  return tx.serialize({ requireAllSignatures: false, verifySignatures: false }).toString('base64')
}
