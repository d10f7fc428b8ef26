import {
  createApproveInstruction,
  createAssociatedTokenAccountIdempotentInstruction,
  createCloseAccountInstruction,
  createTransferCheckedInstruction,
  getAssociatedTokenAddressSync,
} from '@solana/spl-token'
import { Keypair, PublicKey, SystemProgram, Transaction, type TransactionInstruction } from '@solana/web3.js'
import { Identity, type Address } from '@kiln/protocol'
import { describe, expect, it } from 'vitest'
import { cosignSettlement, multisigAddress, vaultAddress } from '../src/index.ts'

// Pure: transactions are built offline with a made-up blockhash; no chain is involved.
const arbiter = Identity.generate()
const client = Identity.generate()
const provider = Identity.generate()
const mallory = Identity.generate()
const mint = Keypair.generate().publicKey.toBase58() as Address
const jobId = 'job_0123456789abcdef'
const vault = vaultAddress(arbiter.address, client.address, jobId)
const multisig = new PublicKey(multisigAddress(arbiter.address, client.address, provider.address))
const arbiterKp = Keypair.fromSecretKey(arbiter.exportSecretKey())
const signers = [arbiterKp.publicKey, new PublicKey(provider.address)]
const ata = (owner: Address): PublicKey =>
  getAssociatedTokenAddressSync(new PublicKey(mint), new PublicKey(owner), true)

const pay = (to: Address, amount: number, from: string = vault, by = signers): TransactionInstruction[] => [
  createAssociatedTokenAccountIdempotentInstruction(
    arbiterKp.publicKey,
    ata(to),
    new PublicKey(to),
    new PublicKey(mint),
  ),
  createTransferCheckedInstruction(new PublicKey(from), new PublicKey(mint), ata(to), multisig, amount, 6, by),
]
// The vault's rent goes back to the client, whose lock created it.
const close = (by = signers): TransactionInstruction =>
  createCloseAccountInstruction(new PublicKey(vault), new PublicKey(client.address), multisig, by)

function build(ixs: TransactionInstruction[], feePayer = arbiterKp.publicKey): string {
  const tx = new Transaction({ feePayer, recentBlockhash: Keypair.generate().publicKey.toBase58() }).add(...ixs)
  if (feePayer.equals(arbiterKp.publicKey)) tx.partialSign(arbiterKp)
  return tx.serialize({ requireAllSignatures: false, verifySignatures: false }).toString('base64')
}

const expectProvider = { vault, mint, minPayout: { to: provider.address, amount: 700 } }
const refused = expect.objectContaining({ kind: 'SETTLEMENT_REFUSED' })

describe('cosignSettlement', () => {
  it('signs a settlement that pays the signer at least its floor and closes the vault', () => {
    const out = cosignSettlement({
      tx: build([...pay(provider.address, 700), ...pay(client.address, 300), close()]),
      signer: provider,
      expect: expectProvider,
    })
    const tx = Transaction.from(Buffer.from(out, 'base64'))
    expect(tx.verifySignatures(true)).toBe(true)
  })

  it('lets the client co-sign a settlement that closes the vault back to it, and nothing else that writes to its key', () => {
    const expectClient = { vault, mint, minPayout: { to: client.address, amount: 1_000 } }
    const withClient = [arbiterKp.publicKey, new PublicKey(client.address)]
    const refund = [...pay(client.address, 1_000, vault, withClient), close(withClient)]
    const out = cosignSettlement({ tx: build(refund), signer: client, expect: expectClient })
    expect(Transaction.from(Buffer.from(out, 'base64')).verifySignatures(false)).toBe(true)
    // The client as the payer of a new token account would spend its own SOL.
    const spends = createAssociatedTokenAccountIdempotentInstruction(
      new PublicKey(client.address),
      ata(mallory.address),
      new PublicKey(mallory.address),
      new PublicKey(mint),
    )
    expect(() =>
      cosignSettlement({ tx: build([spends, ...refund]), signer: client, expect: expectClient }),
    ).toThrowError(/co-signer's own account/)
  })

  it('refuses a payout redirected to someone else', () => {
    const tx = build([...pay(mallory.address, 700), ...pay(client.address, 300), close()])
    expect(() => cosignSettlement({ tx, signer: provider, expect: expectProvider })).toThrowError(refused)
  })

  it('refuses a payout below the floor', () => {
    const tx = build([...pay(provider.address, 699), close()])
    expect(() => cosignSettlement({ tx, signer: provider, expect: expectProvider })).toThrowError(
      /expected at least 700/,
    )
  })

  it('refuses instructions outside the whitelist', () => {
    const approve = createApproveInstruction(new PublicKey(vault), new PublicKey(mallory.address), multisig, 1, signers)
    expect(() =>
      cosignSettlement({
        tx: build([...pay(provider.address, 700), approve, close()]),
        signer: provider,
        expect: expectProvider,
      }),
    ).toThrowError(/token instruction 4/)
    const sol = SystemProgram.transfer({
      fromPubkey: arbiterKp.publicKey,
      toPubkey: new PublicKey(mallory.address),
      lamports: 1,
    })
    expect(() =>
      cosignSettlement({
        tx: build([...pay(provider.address, 700), sol, close()]),
        signer: provider,
        expect: expectProvider,
      }),
    ).toThrowError(/calls program 1111/)
  })

  it('refuses transfers out of another account, or a settlement that leaves the vault open', () => {
    const other = vaultAddress(arbiter.address, client.address, 'job_fedcba9876543210')
    expect(() =>
      cosignSettlement({
        tx: build([...pay(provider.address, 700, other), close()]),
        signer: provider,
        expect: expectProvider,
      }),
    ).toThrowError(/not the vault/)
    expect(() =>
      cosignSettlement({ tx: build(pay(provider.address, 700)), signer: provider, expect: expectProvider }),
    ).toThrowError(/close the vault exactly once/)
  })

  it('refuses to pay the fee or sign a transaction that does not need it', () => {
    const asPayer = build([...pay(provider.address, 700), close()], new PublicKey(provider.address))
    expect(() => cosignSettlement({ tx: asPayer, signer: provider, expect: expectProvider })).toThrowError(
      /pay the fee/,
    )
    const tx = build([...pay(provider.address, 700), close()])
    expect(() => cosignSettlement({ tx, signer: mallory, expect: expectProvider })).toThrowError(
      /does not ask for this signer/,
    )
    expect(() => cosignSettlement({ tx: 'garbage', signer: provider, expect: expectProvider })).toThrowError(refused)
  })
})
