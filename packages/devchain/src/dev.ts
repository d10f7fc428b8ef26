import {
  createAssociatedTokenAccountIdempotentInstruction,
  createInitializeMint2Instruction,
  createMintToCheckedInstruction,
  getAssociatedTokenAddressSync,
  MINT_SIZE,
  TOKEN_PROGRAM_ID,
} from '@solana/spl-token'
import { Keypair, PublicKey, SystemProgram, Transaction, type TransactionInstruction } from '@solana/web3.js'
import { isAddress, KilnError, TOKEN_DECIMALS, type Identity } from '@kiln/protocol'
import type { Ledger } from './ledger.ts'

const LAMPORTS_PER_SOL = 1_000_000_000n

export interface FundOptions {
  /** Lamports to airdrop. */
  lamports?: number
  /** Stablecoin to mint, in base units (10^-6 of a token), into the owner's associated token account. */
  tokens?: number
}

function send(ledger: Ledger, payer: Keypair, ixs: TransactionInstruction[], extraSigners: Keypair[] = []): string {
  const tx = new Transaction({ feePayer: payer.publicKey, recentBlockhash: ledger.clock.latest().blockhash }).add(
    ...ixs,
  )
  tx.sign(payer, ...extraSigners)
  return ledger.send(tx.serialize())
}

/** The devchain's own fee payer (the mint authority) never runs dry. */
function topUp(ledger: Ledger, authority: Keypair): void {
  if (ledger.balance(authority.publicKey.toBase58()) < LAMPORTS_PER_SOL)
    ledger.airdrop(authority.publicKey.toBase58(), 100n * LAMPORTS_PER_SOL)
}

/** Creates the test stablecoin: an SPL mint with 6 decimals, no freeze authority. */
export function createStablecoin(ledger: Ledger, authority: Identity): string {
  const auth = Keypair.fromSecretKey(authority.exportSecretKey())
  const mint = Keypair.generate()
  topUp(ledger, auth)
  send(
    ledger,
    auth,
    [
      SystemProgram.createAccount({
        fromPubkey: auth.publicKey,
        newAccountPubkey: mint.publicKey,
        space: MINT_SIZE,
        lamports: Number(ledger.minimumBalance(MINT_SIZE)),
        programId: TOKEN_PROGRAM_ID,
      }),
      createInitializeMint2Instruction(mint.publicKey, TOKEN_DECIMALS, auth.publicKey, null),
    ],
    [mint],
  )
  return mint.publicKey.toBase58()
}

/** Airdrops SOL and mints stablecoin to `address`; returns the last signature, if any. */
export function fund(
  ledger: Ledger,
  authority: Identity,
  mint: string,
  address: string,
  opts: FundOptions,
): string | undefined {
  if (!isAddress(address)) throw new KilnError('PAYLOAD_INVALID', `not an address: ${address}`)
  for (const [name, v] of Object.entries(opts)) {
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) {
      throw new KilnError('PAYLOAD_INVALID', `${name} must be a non-negative integer`, {
        issues: [{ path: name, message: 'not a non-negative safe integer' }],
      })
    }
  }
  let signature: string | undefined
  if (opts.lamports) signature = ledger.airdrop(address, BigInt(opts.lamports))
  if (opts.tokens) {
    const auth = Keypair.fromSecretKey(authority.exportSecretKey())
    const owner = new PublicKey(address)
    const mintKey = new PublicKey(mint)
    // allowOwnerOffCurve: a fund target may be a PDA or a seed-derived account.
    const ata = getAssociatedTokenAddressSync(mintKey, owner, true)
    topUp(ledger, auth)
    signature = send(ledger, auth, [
      createAssociatedTokenAccountIdempotentInstruction(auth.publicKey, ata, owner, mintKey),
      createMintToCheckedInstruction(mintKey, ata, auth.publicKey, BigInt(opts.tokens), TOKEN_DECIMALS),
    ])
  }
  return signature
}
