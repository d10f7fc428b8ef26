import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  getAccount,
  getAssociatedTokenAddressSync,
  getOrCreateAssociatedTokenAccount,
  transfer,
} from '@solana/spl-token'
import {
  Connection,
  Keypair,
  LAMPORTS_PER_SOL,
  PublicKey,
  SendTransactionError,
  SystemProgram,
  Transaction,
  sendAndConfirmTransaction,
} from '@solana/web3.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startDevchain, type Devchain } from '../src/index.ts'

interface RpcReply {
  result?: Record<string, unknown>
  error?: { code: number; message: string; data?: unknown }
}
async function rpc(url: string, method: string, params: unknown[] = []): Promise<RpcReply> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  })
  return (await res.json()) as RpcReply
}

async function airdrop(conn: Connection, to: PublicKey, lamports: number): Promise<void> {
  const sig = await conn.requestAirdrop(to, lamports)
  const r = await conn.confirmTransaction({ signature: sig, ...(await conn.getLatestBlockhash()) })
  expect(r.value.err).toBeNull()
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

describe('devchain over HTTP and WebSocket, with an unmodified web3.js Connection', () => {
  let chain: Devchain
  let conn: Connection

  beforeAll(async () => {
    chain = await startDevchain({ port: 0 })
    conn = new Connection(chain.rpcUrl, 'confirmed')
  })
  afterAll(async () => {
    await chain.stop()
  })

  it('listens for WebSocket on port + 1, as web3.js derives it', () => {
    expect(Number(new URL(chain.wsUrl).port)).toBe(Number(new URL(chain.rpcUrl).port) + 1)
  })

  it('airdrops, confirms and reports balances', async () => {
    const kp = Keypair.generate()
    expect(await conn.getBalance(kp.publicKey)).toBe(0)
    await airdrop(conn, kp.publicKey, 3 * LAMPORTS_PER_SOL)
    expect(await conn.getBalance(kp.publicKey)).toBe(3 * LAMPORTS_PER_SOL)
    // A second equal airdrop in the same slot is a distinct transaction.
    await airdrop(conn, kp.publicKey, 3 * LAMPORTS_PER_SOL)
    expect(await conn.getBalance(kp.publicKey)).toBe(6 * LAMPORTS_PER_SOL)
  })

  it('funds stablecoin through kiln_fund and moves it with the spl-token helpers', async () => {
    const alice = Keypair.generate()
    const bob = Keypair.generate()
    const info = await rpc(chain.rpcUrl, 'kiln_devInfo')
    expect(info.result).toEqual({ mint: chain.mint, decimals: 6 })
    const funded = await rpc(chain.rpcUrl, 'kiln_fund', [
      alice.publicKey.toBase58(),
      { lamports: LAMPORTS_PER_SOL, tokens: 5_000_000 },
    ])
    expect(typeof funded.result?.signature).toBe('string')
    const mint = new PublicKey(chain.mint)
    const aliceAta = getAssociatedTokenAddressSync(mint, alice.publicKey)
    expect((await getAccount(conn, aliceAta)).amount).toBe(5_000_000n)

    const bobAta = await getOrCreateAssociatedTokenAccount(conn, alice, mint, bob.publicKey)
    await transfer(conn, alice, aliceAta, bobAta.address, alice, 1_250_000)
    expect((await getAccount(conn, aliceAta)).amount).toBe(3_750_000n)
    expect((await conn.getTokenAccountBalance(bobAta.address)).value).toMatchObject({
      amount: '1250000',
      decimals: 6,
      uiAmount: 1.25,
    })

    // sendAndConfirmTransaction waits on signatureSubscribe over the WebSocket.
    const before = await conn.getBalance(bob.publicKey)
    await sendAndConfirmTransaction(
      conn,
      new Transaction().add(
        SystemProgram.transfer({
          fromPubkey: alice.publicKey,
          toPubkey: bob.publicKey,
          lamports: LAMPORTS_PER_SOL / 10,
        }),
      ),
      [alice],
    )
    expect(await conn.getBalance(bob.publicKey)).toBe(before + LAMPORTS_PER_SOL / 10)

    const parsed = await conn.getParsedAccountInfo(bobAta.address)
    expect(parsed.value?.data).toMatchObject({
      program: 'spl-token',
      parsed: { type: 'account', info: { owner: bob.publicKey.toBase58(), mint: chain.mint } },
    })
  })

  it('answers a failing transaction with a JSON-RPC error carrying the logs', async () => {
    const poor = Keypair.generate()
    await chain.fund(poor.publicKey.toBase58(), { lamports: LAMPORTS_PER_SOL, tokens: 10 })
    const ata = getAssociatedTokenAddressSync(new PublicKey(chain.mint), poor.publicKey)
    const err = await transfer(conn, poor, ata, ata, poor, 11).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SendTransactionError)
    const logs = await (err as SendTransactionError).getLogs(conn)
    expect(logs.join('\n')).toContain('insufficient funds')
    expect((err as Error).message).toContain('custom program error: 0x1')
    expect((await getAccount(conn, ata)).amount).toBe(10n)

    // A signature that does not verify is refused before execution, as a node does.
    const tx = new Transaction({ feePayer: poor.publicKey, ...(await conn.getLatestBlockhash()) }).add(
      SystemProgram.transfer({
        fromPubkey: poor.publicKey,
        toPubkey: Keypair.generate().publicKey,
        lamports: 1_000_000,
      }),
    )
    tx.sign(poor)
    const bytes = tx.serialize()
    bytes[5] = bytes[5]! ^ 0xff
    await expect(conn.sendRawTransaction(bytes)).rejects.toThrow(/signature verification failure/)
  })

  it('simulates, answers transaction queries and statuses', async () => {
    const kp = Keypair.generate()
    await chain.fund(kp.publicKey.toBase58(), { lamports: LAMPORTS_PER_SOL })
    const tx = new Transaction().add(
      SystemProgram.transfer({
        fromPubkey: kp.publicKey,
        toPubkey: Keypair.generate().publicKey,
        lamports: LAMPORTS_PER_SOL / 2,
      }),
    )
    const sim = await conn.simulateTransaction(tx, [kp])
    expect(sim.value.err).toBeNull()
    expect(sim.value.logs?.[0]).toContain('invoke [1]')
    const sig = await sendAndConfirmTransaction(conn, tx, [kp])
    const st = await conn.getSignatureStatus(sig)
    expect(st.value).toMatchObject({ err: null, confirmationStatus: 'finalized' })
    const got = await conn.getTransaction(sig, { maxSupportedTransactionVersion: 0 })
    expect(got?.meta?.fee).toBe(5000)
    const meta = got?.meta
    expect(meta && meta.preBalances[0]! - meta.postBalances[0]!).toBe(LAMPORTS_PER_SOL / 2 + 5000)
  })

  it('shows the same state to two connections (two processes)', async () => {
    const other = new Connection(chain.rpcUrl, 'confirmed')
    const kp = Keypair.generate()
    await airdrop(other, kp.publicKey, 42 * LAMPORTS_PER_SOL)
    expect(await conn.getBalance(kp.publicKey)).toBe(42 * LAMPORTS_PER_SOL)
    const [a, b] = await Promise.all([conn.getMultipleAccountsInfo([kp.publicKey]), other.getAccountInfo(kp.publicKey)])
    expect(a[0]?.lamports).toBe(b?.lamports)
  })

  it('accepts a blockhash a few seconds old', async () => {
    const kp = Keypair.generate()
    await chain.fund(kp.publicKey.toBase58(), { lamports: LAMPORTS_PER_SOL })
    const { blockhash } = await conn.getLatestBlockhash()
    await sleep(1_500)
    expect((await conn.getLatestBlockhash()).blockhash).not.toBe(blockhash)
    const tx = new Transaction({ feePayer: kp.publicKey, recentBlockhash: blockhash }).add(
      SystemProgram.transfer({
        fromPubkey: kp.publicKey,
        toPubkey: Keypair.generate().publicKey,
        lamports: LAMPORTS_PER_SOL / 4,
      }),
    )
    tx.sign(kp)
    const sig = await conn.sendRawTransaction(tx.serialize())
    expect((await conn.getSignatureStatus(sig)).value?.err).toBeNull()
    // The same bytes again are a duplicate, as on a node.
    await expect(conn.sendRawTransaction(tx.serialize())).rejects.toThrow(/already been processed/)
  })

  it('follows JSON-RPC conventions for unknown methods, bad params and big bodies', async () => {
    expect((await rpc(chain.rpcUrl, 'noSuchMethod')).error?.code).toBe(-32601)
    expect((await rpc(chain.rpcUrl, 'getBalance', ['not-a-key'])).error?.code).toBe(-32602)
    expect((await rpc(chain.rpcUrl, 'sendTransaction', ['@@@', { encoding: 'base58' }])).error?.code).toBe(-32602)
    const big = await fetch(chain.rpcUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: 'x'.repeat(2 << 20),
    })
    expect(big.status).toBe(413)
    const batch = await fetch(chain.rpcUrl, {
      method: 'POST',
      body: JSON.stringify([
        { jsonrpc: '2.0', id: 1, method: 'getSlot' },
        { jsonrpc: '2.0', id: 2, method: 'getHealth' },
      ]),
    })
    expect(await batch.json()).toMatchObject([
      { id: 1, result: expect.any(Number) },
      { id: 2, result: 'ok' },
    ])
  })
})

describe('devchain lifetimes', () => {
  it('rejects a blockhash older than its TTL', async () => {
    const chain = await startDevchain({ port: 0, blockhashTtlMs: 1_000 })
    try {
      const conn = new Connection(chain.rpcUrl, 'confirmed')
      const kp = Keypair.generate()
      await chain.fund(kp.publicKey.toBase58(), { lamports: LAMPORTS_PER_SOL })
      const { blockhash } = await conn.getLatestBlockhash()
      await sleep(1_700)
      const tx = new Transaction({ feePayer: kp.publicKey, recentBlockhash: blockhash }).add(
        SystemProgram.transfer({
          fromPubkey: kp.publicKey,
          toPubkey: Keypair.generate().publicKey,
          lamports: 1_000_000,
        }),
      )
      tx.sign(kp)
      await expect(conn.sendRawTransaction(tx.serialize())).rejects.toThrow(/Blockhash not found/)
      expect((await conn.isBlockhashValid(blockhash)).value).toBe(false)
      expect(await conn.getBalance(kp.publicKey)).toBe(LAMPORTS_PER_SOL)
    } finally {
      await chain.stop()
    }
  })

  it('keeps balances, the mint and signature statuses across stop and start on the same dataDir', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'kiln-devchain-'))
    const alice = Keypair.generate()
    const bob = Keypair.generate()
    let chain = await startDevchain({ port: 0, dataDir })
    const mint = chain.mint
    let conn = new Connection(chain.rpcUrl, 'confirmed')
    await chain.fund(alice.publicKey.toBase58(), { lamports: 2 * LAMPORTS_PER_SOL, tokens: 7_000_000 })
    const bobAta = await getOrCreateAssociatedTokenAccount(conn, alice, new PublicKey(mint), bob.publicKey)
    const sig = await transfer(
      conn,
      alice,
      getAssociatedTokenAddressSync(new PublicKey(mint), alice.publicKey),
      bobAta.address,
      alice,
      2_000_000,
    )
    const before = {
      alice: await conn.getBalance(alice.publicKey),
      bob: (await getAccount(conn, bobAta.address)).amount,
    }
    await chain.stop()

    chain = await startDevchain({ port: 0, dataDir })
    try {
      conn = new Connection(chain.rpcUrl, 'confirmed')
      expect(chain.mint).toBe(mint)
      expect(await conn.getBalance(alice.publicKey)).toBe(before.alice)
      expect((await getAccount(conn, bobAta.address)).amount).toBe(before.bob)
      expect((await conn.getSignatureStatus(sig, { searchTransactionHistory: true })).value?.err).toBeNull()
      // The restored ledger still executes token programs and mints.
      await chain.fund(bob.publicKey.toBase58(), { tokens: 1 })
      expect((await getAccount(conn, bobAta.address)).amount).toBe(before.bob + 1n)
    } finally {
      await chain.stop()
    }
  })
})
