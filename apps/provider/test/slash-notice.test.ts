import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  createCloseAccountInstruction,
  createTransferCheckedInstruction,
  getAssociatedTokenAddressSync,
} from '@solana/spl-token'
import { Keypair, PublicKey, Transaction } from '@solana/web3.js'
import { describe, expect, it } from 'vitest'
import { settlementSignature } from '@kiln/escrow'
import type { Channel } from '@kiln/mesh'
import { Identity, JobSpec, Kind, NonceCache, seal, type Lease } from '@kiln/protocol'
import { JobJournal } from '../src/journal.ts'
import { serveSettle } from '../src/settle.ts'

const addr = () => Identity.generate().address

/** A settlement of `vault` as the arbiter builds one: everything to the client, then the vault closed. */
function slashTx(lease: Lease, payer: Keypair): string {
  const vault = new PublicKey(lease.vault)
  const mint = new PublicKey(lease.mint)
  const multisig = new PublicKey(lease.multisig)
  const toClient = getAssociatedTokenAddressSync(mint, new PublicKey(lease.client))
  const tx = new Transaction({
    feePayer: payer.publicKey,
    recentBlockhash: Keypair.generate().publicKey.toBase58(),
  }).add(
    createTransferCheckedInstruction(vault, mint, toClient, multisig, lease.lockAmount + (lease.bond ?? 0), 6, [
      payer.publicKey,
    ]),
    createCloseAccountInstruction(vault, payer.publicKey, multisig, [payer.publicKey]),
  )
  tx.partialSign(payer)
  return tx.serialize({ requireAllSignatures: false }).toString('base64')
}

function channel(request: unknown): { ch: Channel; replies: unknown[] } {
  const replies: unknown[] = []
  const frames = [request]
  const ch = {
    remote: addr(),
    protocol: 'settle',
    nextJson: () => Promise.resolve(frames.shift()),
    sendJson: (v: unknown) => {
      replies.push(v)
      return Promise.resolve()
    },
  }
  return { ch: ch as unknown as Channel, replies }
}

function setup() {
  const provider = Identity.generate()
  const marketplace = Identity.generate()
  const journal = new JobJournal(mkdtempSync(join(tmpdir(), 'kiln-slash-')))
  const lease: Lease = {
    jobId: 'job_0000000000abcdef',
    client: addr(),
    provider: provider.address,
    arbiter: marketplace.address,
    mint: addr(),
    multisig: addr(),
    vault: addr(),
    spec: JobSpec.parse({ image: 'kiln/busybox:1', maxPricePerHour: 3_600_000 }),
    pricePerHour: 3_600_000,
    lockAmount: 10_000,
    escrowId: 'job_0000000000abcdefa7',
    startBy: 0,
    bond: 100_000,
    feeBps: 100,
  }
  journal.put({ lease, state: 'finished', acceptedAt: 1, delivered: true })
  const notice = (tx: string) => ({
    envelope: seal(marketplace, Kind.settleRequest, { jobId: lease.jobId, action: 'slash', transaction: tx }),
  })
  const ctx = (onChain: Set<string>) => ({
    identity: provider,
    marketplace: marketplace.address,
    journal,
    nonces: new NonceCache(),
    log: { info: () => {}, warn: () => {}, error: () => {} },
    landed: (sig: string) => Promise.resolve(onChain.has(sig)),
  })
  return { lease, journal, notice, ctx }
}

describe('a slash notice (the provider signs nothing, so it checks what it is told)', () => {
  it('is recorded, with its signature, when it settles our vault and is on chain', async () => {
    const { lease, journal, notice, ctx } = setup()
    const payer = Keypair.generate()
    const tx = slashTx(lease, payer)
    const sig = settlementSignature(tx)
    const { ch, replies } = channel(notice(tx))
    await serveSettle(ctx(new Set([sig])), ch)
    expect(replies).toEqual([{ ok: true, transaction: tx }])
    expect(journal.get(lease.jobId)?.settlement).toMatchObject({
      action: 'slash',
      toProvider: 0,
      bondReturned: 0,
      signature: sig,
    })
  })

  it('is refused, and the journal left as it was, when the transaction is not on chain', async () => {
    const { lease, journal, notice, ctx } = setup()
    const { ch, replies } = channel(notice(slashTx(lease, Keypair.generate())))
    await serveSettle(ctx(new Set()), ch)
    expect(replies).toMatchObject([
      { ok: false, error: { kind: 'SETTLEMENT_REFUSED', message: expect.stringMatching(/not on chain/) as unknown } },
    ])
    expect(journal.get(lease.jobId)?.settlement).toBeUndefined()
  })

  it('is refused when it settles some other vault', async () => {
    const { lease, journal, notice, ctx } = setup()
    const tx = slashTx({ ...lease, vault: addr() }, Keypair.generate())
    const { ch, replies } = channel(notice(tx))
    await serveSettle(ctx(new Set([settlementSignature(tx)])), ch)
    expect(replies).toMatchObject([
      {
        ok: false,
        error: {
          kind: 'SETTLEMENT_REFUSED',
          message: expect.stringMatching(/not the vault|other than the vault/) as unknown,
        },
      },
    ])
    expect(journal.get(lease.jobId)?.settlement).toBeUndefined()
  })
})
