import { createTransferCheckedInstruction, getAssociatedTokenAddressSync } from '@solana/spl-token'
import {
  Connection,
  Keypair,
  LAMPORTS_PER_SOL,
  PublicKey,
  SystemProgram,
  Transaction,
  sendAndConfirmTransaction,
} from '@solana/web3.js'
import { startDevchain, type Devchain } from '@kiln/devchain'
import { Identity, randomHex, type Address } from '@kiln/protocol'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  checkLock,
  cosignSettlement,
  createEscrow,
  lockFunds,
  multisigAddress,
  tokenBalance,
  vaultAddress,
  type Escrow,
} from '../src/index.ts'

const newJob = (): string => `job_${randomHex(8)}`
const kind = (k: string) => expect.objectContaining({ kind: k })

describe('escrow on a real devchain', () => {
  let chain: Devchain
  let conn: Connection
  let escrow: Escrow
  let mint: Address
  const arbiter = Identity.generate()
  const client = Identity.generate()
  const provider = Identity.generate()
  const parties = { client: client.address, provider: provider.address, arbiter: arbiter.address }

  beforeAll(async () => {
    chain = await startDevchain({ port: 0 })
    conn = new Connection(chain.rpcUrl, 'confirmed')
    mint = chain.mint as Address
    await chain.fund(arbiter.address, { lamports: 10 * LAMPORTS_PER_SOL })
    await chain.fund(client.address, { lamports: LAMPORTS_PER_SOL, tokens: 100_000_000 })
    await chain.fund(provider.address, { lamports: LAMPORTS_PER_SOL })
    escrow = createEscrow({ connection: conn, arbiter, mint })
  })
  afterAll(async () => {
    await chain.stop()
  })

  async function lockedJob(amount: number): Promise<{
    jobId: string
    vault: Address
    ref: { jobId: string; mint: Address; vault: Address } & typeof parties
  }> {
    const jobId = newJob()
    const { vault } = await escrow.prepareVault({ jobId, client: client.address, provider: provider.address })
    const ref = { jobId, mint, vault, ...parties }
    await lockFunds({ connection: conn, from: client, amount, ...ref })
    return { jobId, vault, ref }
  }

  it("locks (the client's lock creates the vault), checks the lock, releases a split co-signed by the provider, with exact balances", async () => {
    const jobId = newJob()
    const { multisig, vault } = await escrow.prepareVault({ jobId, client: client.address, provider: provider.address })
    expect(vault).toBe(vaultAddress(arbiter.address, client.address, jobId))
    expect(multisig).toBe(multisigAddress(arbiter.address, client.address, provider.address))
    const ref = { jobId, mint, vault, ...parties }
    expect(await checkLock(conn, { ...ref, amount: 10_000_000 })).toMatchObject({
      ok: false,
      reason: expect.stringContaining('does not exist'),
    })

    const clientStart = await tokenBalance(conn, mint, client.address)
    const providerStart = await tokenBalance(conn, mint, provider.address)
    const clientSol = await conn.getBalance(new PublicKey(client.address))
    await lockFunds({ connection: conn, from: client, amount: 10_000_000, ...ref })
    const rent165 = await conn.getMinimumBalanceForRentExemption(165)
    expect(await conn.getBalance(new PublicKey(client.address))).toBe(clientSol - 5_000 - rent165)
    expect(await checkLock(conn, { ...ref, amount: 10_000_000 })).toEqual({ ok: true, balance: 10_000_000 })
    expect(await tokenBalance(conn, mint, client.address)).toBe(clientStart - 10_000_000)

    const { tx, expected } = await escrow.buildSettlement({
      jobId,
      client: client.address,
      provider: provider.address,
      cosigner: 'provider',
      payouts: [{ to: provider.address, amount: 7_500_000 }],
    })
    expect(expected.payouts).toEqual([
      { to: provider.address, amount: 7_500_000 },
      { to: client.address, amount: 2_500_000 },
    ])
    expect(expected.cosigner).toBe(provider.address)
    const signed = cosignSettlement({
      tx,
      signer: provider,
      expect: { vault, mint, minPayout: { to: provider.address, amount: 7_500_000 } },
    })
    const arbiterSol = await conn.getBalance(new PublicKey(arbiter.address))
    const providerAtaExisted =
      (await conn.getAccountInfo(
        getAssociatedTokenAddressSync(new PublicKey(mint), new PublicKey(provider.address)),
      )) !== null
    const sig = await escrow.submitSettlement(signed)
    expect((await conn.getSignatureStatus(sig)).value?.err).toBeNull()

    expect(await tokenBalance(conn, mint, provider.address)).toBe(providerStart + 7_500_000)
    expect(await tokenBalance(conn, mint, client.address)).toBe(clientStart - 10_000_000 + 2_500_000)
    expect(await conn.getAccountInfo(new PublicKey(vault))).toBeNull()
    expect(await escrow.settlementStatus({ jobId, client: client.address })).toEqual({
      vault,
      exists: false,
      balance: 0,
    })
    // The arbiter paid the fee (two signatures) and any new token account; the vault's rent went back to the client.
    expect(await conn.getBalance(new PublicKey(arbiter.address))).toBe(
      arbiterSol - 10_000 - (providerAtaExisted ? 0 : rent165),
    )
    expect(await conn.getBalance(new PublicKey(client.address))).toBe(clientSol - 5_000)
  })

  it('lets no single party move the funds', async () => {
    const { vault } = await lockedJob(1_000_000)
    const arbiterKp = Keypair.fromSecretKey(arbiter.exportSecretKey())
    const clientKp = Keypair.fromSecretKey(client.exportSecretKey())
    const multisig = new PublicKey(multisigAddress(arbiter.address, client.address, provider.address))
    // Into the client's existing token account, so only the missing signature can fail it.
    const dest = getAssociatedTokenAddressSync(new PublicKey(mint), new PublicKey(client.address))
    const grab = (who: Keypair): Promise<string> => {
      const ix = createTransferCheckedInstruction(
        new PublicKey(vault),
        new PublicKey(mint),
        dest,
        multisig,
        1_000_000,
        6,
        [who.publicKey],
      )
      return sendAndConfirmTransaction(conn, new Transaction().add(ix), [who])
    }
    await expect(grab(arbiterKp)).rejects.toThrow(/missing required signature/)
    await expect(grab(clientKp)).rejects.toThrow(/missing required signature/)
    expect(await conn.getTokenAccountBalance(new PublicKey(vault))).toMatchObject({ value: { amount: '1000000' } })
  })

  it('refuses to submit a settlement signed by the arbiter alone', async () => {
    const { jobId, vault } = await lockedJob(500_000)
    const { tx } = await escrow.buildSettlement({
      jobId,
      client: client.address,
      provider: provider.address,
      cosigner: 'provider',
      payouts: [{ to: provider.address, amount: 500_000 }],
    })
    await expect(escrow.submitSettlement(tx)).rejects.toThrowError(kind('ESCROW_TX_REJECTED'))
    await expect(conn.sendRawTransaction(Buffer.from(tx, 'base64'))).rejects.toThrow(/signature verification failure/)
    expect((await escrow.settlementStatus({ jobId, client: client.address })).balance).toBe(500_000)
    expect(vault).toBe(vaultAddress(arbiter.address, client.address, jobId))
  })

  it('refunds the client with the client as co-signer', async () => {
    const before = await tokenBalance(conn, mint, client.address)
    const { jobId, vault } = await lockedJob(3_000_000)
    const { tx, expected } = await escrow.buildSettlement({
      jobId,
      client: client.address,
      provider: provider.address,
      cosigner: 'client',
      payouts: [],
    })
    expect(expected.payouts).toEqual([{ to: client.address, amount: 3_000_000 }])
    const signed = cosignSettlement({
      tx,
      signer: client,
      expect: { vault, mint, minPayout: { to: client.address, amount: 3_000_000 } },
    })
    await escrow.submitSettlement(signed)
    expect(await tokenBalance(conn, mint, client.address)).toBe(before)
    expect((await escrow.settlementStatus({ jobId, client: client.address })).exists).toBe(false)
  })

  it('never pays twice: a settled job has no vault, and resubmitting is a no-op', async () => {
    const { jobId, vault } = await lockedJob(2_000_000)
    const providerBefore = await tokenBalance(conn, mint, provider.address)
    const { tx } = await escrow.buildSettlement({
      jobId,
      client: client.address,
      provider: provider.address,
      cosigner: 'provider',
      payouts: [{ to: provider.address, amount: 2_000_000 }],
    })
    const signed = cosignSettlement({
      tx,
      signer: provider,
      expect: { vault, mint, minPayout: { to: provider.address, amount: 2_000_000 } },
    })
    const sig = await escrow.submitSettlement(signed)
    expect(await escrow.submitSettlement(signed)).toBe(sig)
    expect(await tokenBalance(conn, mint, provider.address)).toBe(providerBefore + 2_000_000)
    expect(await escrow.settlementStatus({ jobId, client: client.address })).toMatchObject({ exists: false })
    await expect(
      escrow.buildSettlement({
        jobId,
        client: client.address,
        provider: provider.address,
        cosigner: 'provider',
        payouts: [{ to: provider.address, amount: 2_000_000 }],
      }),
    ).rejects.toThrowError(
      expect.objectContaining({ kind: 'ESCROW_NOT_FUNDED', message: expect.stringContaining('settled already') }),
    )
  })

  it('has the co-signer refuse a settlement that redirects its payout', async () => {
    const { jobId, vault } = await lockedJob(1_000_000)
    const mallory = Identity.generate()
    // A dishonest arbiter builds and signs a settlement paying someone else.
    const { tx } = await escrow.buildSettlement({
      jobId,
      client: client.address,
      provider: provider.address,
      cosigner: 'provider',
      payouts: [{ to: mallory.address, amount: 1_000_000 }],
    })
    expect(() =>
      cosignSettlement({
        tx,
        signer: provider,
        expect: { vault, mint, minPayout: { to: provider.address, amount: 1_000_000 } },
      }),
    ).toThrowError(kind('SETTLEMENT_REFUSED'))
    expect((await escrow.settlementStatus({ jobId, client: client.address })).balance).toBe(1_000_000)
  })

  it('prepareVault is idempotent, reuses one multisig per triple and costs the arbiter nothing per job', async () => {
    const jobA = newJob()
    const jobB = newJob()
    const a1 = await escrow.prepareVault({ jobId: jobA, client: client.address, provider: provider.address })
    const arbiterSol = await conn.getBalance(new PublicKey(arbiter.address))
    const a2 = await escrow.prepareVault({ jobId: jobA, client: client.address, provider: provider.address })
    expect(a2).toEqual(a1)
    const b = await escrow.prepareVault({ jobId: jobB, client: client.address, provider: provider.address })
    expect(b.multisig).toBe(a1.multisig)
    expect(b.vault).not.toBe(a1.vault)
    // No vault exists until its client locks: a placement nobody locks leaves nothing on chain.
    expect(await conn.getAccountInfo(new PublicKey(b.vault))).toBeNull()
    expect(await conn.getBalance(new PublicKey(arbiter.address))).toBe(arbiterSol)
    // Its address needs the client: a bare escrow id, which would read the wrong place, does not compile.
    // @ts-expect-error settlementStatus takes { jobId, client }
    void (() => escrow.settlementStatus(jobA))
  })

  it('still creates a vault whose address someone pre-funded with lamports', async () => {
    const jobId = newJob()
    const { vault } = await escrow.prepareVault({ jobId, client: client.address, provider: provider.address })
    const griefer = Keypair.fromSecretKey(provider.exportSecretKey())
    await sendAndConfirmTransaction(
      conn,
      new Transaction().add(
        SystemProgram.transfer({ fromPubkey: griefer.publicKey, toPubkey: new PublicKey(vault), lamports: 1_000_000 }),
      ),
      [griefer],
    )
    await lockFunds({ connection: conn, from: client, amount: 1_000, jobId, mint, vault, ...parties })
    expect(await checkLock(conn, { jobId, mint, vault, ...parties, amount: 1_000 })).toEqual({
      ok: true,
      balance: 1_000,
    })
  })

  it("lets only the client create the vault: a bond cannot go in before the client's lock", async () => {
    const jobId = newJob()
    const { vault } = await escrow.prepareVault({ jobId, client: client.address, provider: provider.address })
    await chain.fund(provider.address, { tokens: 1_000 })
    await expect(
      lockFunds({ connection: conn, from: provider, amount: 1_000, jobId, mint, vault, ...parties }),
    ).rejects.toThrowError(
      expect.objectContaining({
        kind: 'ESCROW_WRONG_ACCOUNT',
        message: expect.stringContaining("only the client's lock creates it"),
      }),
    )
    expect(await conn.getAccountInfo(new PublicKey(vault))).toBeNull()
    await lockFunds({ connection: conn, from: client, amount: 2_000, jobId, mint, vault, ...parties })
    await lockFunds({ connection: conn, from: provider, amount: 1_000, jobId, mint, vault, ...parties })
    expect(await checkLock(conn, { jobId, mint, vault, ...parties, amount: 3_000 })).toEqual({
      ok: true,
      balance: 3_000,
    })
  })

  it('refuses to lock into a vault of other parties, and without enough funds', async () => {
    const jobId = newJob()
    const { vault } = await escrow.prepareVault({ jobId, client: client.address, provider: provider.address })
    const stranger = Identity.generate().address
    await expect(
      lockFunds({
        connection: conn,
        from: client,
        amount: 1,
        jobId,
        mint,
        vault,
        client: client.address,
        provider: stranger,
        arbiter: arbiter.address,
      }),
    ).rejects.toThrowError(kind('ESCROW_WRONG_ACCOUNT'))
    expect(await checkLock(conn, { jobId: newJob(), mint, vault, ...parties, amount: 0 })).toMatchObject({
      ok: false,
      reason: expect.stringContaining('is not job'),
    })
    const poor = Identity.generate()
    await chain.fund(poor.address, { lamports: LAMPORTS_PER_SOL, tokens: 5 })
    const theirs = { ...parties, client: poor.address }
    const own = await escrow.prepareVault({ jobId, client: poor.address, provider: provider.address })
    const err = await lockFunds({
      connection: conn,
      from: poor,
      amount: 6,
      jobId,
      mint,
      vault: own.vault,
      ...theirs,
    }).catch((e: unknown) => e)
    expect(err).toMatchObject({
      kind: 'INSUFFICIENT_FUNDS',
      context: { needed: 6, available: 5 },
      message: `${poor.address} holds 0.000005 tUSDC, needs 0.000006 tUSDC to lock`,
    })
    await lockFunds({ connection: conn, from: poor, amount: 5, jobId, mint, vault: own.vault, ...theirs })
    expect(await checkLock(conn, { jobId, mint, vault: own.vault, ...theirs, amount: 6 })).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/holds 0\.000005 tUSDC, less than 0\.000006 tUSDC$/),
    })
    // SOL for the vault's rent is needed too (it comes back at settlement).
    const broke = Identity.generate()
    await chain.fund(broke.address, { lamports: 1_000_000, tokens: 5 })
    const brokeVault = await escrow.prepareVault({ jobId, client: broke.address, provider: provider.address })
    const noRent = await lockFunds({
      connection: conn,
      from: broke,
      amount: 5,
      jobId,
      mint,
      vault: brokeVault.vault,
      ...parties,
      client: broke.address,
    }).catch((e: unknown) => e)
    expect(noRent).toMatchObject({ kind: 'INSUFFICIENT_FUNDS', message: expect.stringContaining("vault's rent") })
  })
})
