import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Connection, PublicKey } from '@solana/web3.js'
import { describe, expect, it } from 'vitest'
import { tokenBalance } from '@kiln/escrow'
import { Identity, Kind, ResultReceipt, open, sha256Hex, type Address } from '@kiln/protocol'
import { createKilnClient, unpackOutput } from '@kiln/sdk'
import { PROVIDER_FUNDS } from '../support/network.ts'
import { useNetwork } from '../support/use-network.ts'

/**
 * The whole path on real parts: the CLI's SDK → tRPC API → BullMQ on Redis → a provider
 * process over libp2p (TCP + Noise + Yamux) → 2-of-3 multisig escrow on the LiteSVM devchain
 * → Docker → output back content-addressed with a signed receipt → settlement on chain.
 */
describe('a first job, end to end', () => {
  const fx = useNetwork({ providers: 2 })

  it('runs matmul: locks funds, streams logs, returns a verified output and pays the provider', async () => {
    const kiln = createKilnClient({ url: fx.net.api, identity: fx.client })
    const conn = new Connection(fx.net.rpcUrl, 'confirmed')
    const mint = fx.net.mint as Address
    const states: string[] = []
    const logs: string[] = []
    const { jobId, maxCost } = await kiln.submit({
      image: 'kiln/matmul:1',
      command: ['128'],
      resources: { cpu: 1, memoryMb: 256 },
      maxPricePerHour: 1_000_000,
      timeoutSec: 60,
    })
    expect(maxCost).toBe(Math.ceil((1_000_000 * 60) / 3600))
    let vault: string | undefined
    let vaultDuringRun: Promise<number> | undefined
    expect(await tokenBalance(conn, mint, fx.client.address)).toBe(fx.funds)
    const job = await kiln.watch(jobId, {
      onState: (j) => {
        states.push(j.state)
      },
      // The lock this client made: the job as last read may not show it yet.
      onLocked: (_sig, _j, lock) => {
        vault = lock.vault
        // Once locked, the vault holds the whole lock until settlement.
        vaultDuringRun = conn.getTokenAccountBalance(new PublicKey(vault!)).then((b) => Number(b.value.amount))
      },
      onLog: (l) => {
        logs.push(l.text)
      },
    })
    expect(job.state).toBe('done')
    expect(states.at(-1)).toBe('done')
    // The durable history: every state once, in order.
    expect(job.events.map((e) => e.to)).toEqual([
      'queued',
      'matched',
      'locked',
      'running',
      'verifying',
      'settling',
      'done',
    ])
    expect(logs.join('')).toMatch(/matmul/i)

    // The receipt is signed by the provider that ran it and names the output we download.
    const provider = job.provider as Address
    expect(fx.net.providers.map((p) => p.info.address)).toContain(provider)
    const receipt = open(job.receipt, {
      kind: Kind.receipt,
      schema: ResultReceipt,
      signer: provider,
      now: job.receipt!.issuedAt + 1,
    }).payload
    expect(receipt.status).toBe('succeeded')
    expect(receipt.exitCode).toBe(0)
    const tar = await kiln.download(job.outputDigest!)
    expect(sha256Hex(tar)).toBe(receipt.outputDigest)
    const dir = join(fx.net.dataDir, 'client-out')
    expect((await unpackOutput(tar, dir)).files).toBe(2)
    expect(JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8'))).toMatchObject({ n: 128 })
    expect(readFileSync(join(dir, 'result.npy')).subarray(1, 6).toString()).toBe('NUMPY')

    // Money: the provider got its pro-rata pay less the marketplace fee, and its bond back;
    // the client the rest of its lock; the fee went to the marketplace; the vault is closed.
    const paid = job.paidToProvider!
    const refunded = job.refundedToClient!
    const bond = job.bond!
    const fee = job.fee!
    expect(bond).toBe(10 * job.lock!.amount)
    expect(paid - bond).toBeGreaterThan(0)
    expect(fee).toBe(Math.floor(((paid - bond + fee) * 100) / 10_000))
    expect(paid - bond + fee + refunded).toBe(job.lock!.amount)
    expect(await tokenBalance(conn, mint, provider)).toBe(PROVIDER_FUNDS + paid - bond)
    expect(await tokenBalance(conn, mint, fx.client.address)).toBe(fx.funds - (job.lock!.amount - refunded))
    expect(await tokenBalance(conn, mint, fx.net.arbiter as Address)).toBe(fee)
    expect(vault).toBe(job.lock!.vault)
    expect(await conn.getAccountInfo(new PublicKey(vault!))).toBeNull()
    expect(await vaultDuringRun).toBeGreaterThanOrEqual(job.lock!.amount)
    expect(await vaultDuringRun).toBeLessThanOrEqual(job.lock!.amount + bond)
    // The verified receipt raised the provider's reputation above a newcomer's 0.5.
    const listed = (await kiln.providers()).find((p) => p.address === provider)
    expect(listed?.reputation).toBeGreaterThan(0.5)
    const tx = await conn.getSignatureStatuses([job.settlementSignature!])
    expect(tx.value[0]?.err ?? null).toBeNull()
  })

  it('refunds the client in full when the image does not exist', async () => {
    const kiln = createKilnClient({ url: fx.net.api, identity: fx.client })
    const conn = new Connection(fx.net.rpcUrl, 'confirmed')
    const before = await tokenBalance(conn, fx.net.mint as Address, fx.client.address)
    const { jobId } = await kiln.submit({ image: 'kiln/does-not-exist:1', maxPricePerHour: 1_000_000, timeoutSec: 60 })
    const job = await kiln.watch(jobId)
    expect(job.state).toBe('failed')
    expect(job.error?.kind).toBe('IMAGE_NOT_FOUND')
    expect(job.error?.message).toMatch(/does-not-exist/)
    // Nothing for the work, the bond back to the provider, everything else to the client.
    expect(job.paidToProvider).toBe(job.bond)
    expect(job.fee).toBe(0)
    expect(job.refundedToClient).toBe(job.lock!.amount)
    expect(job.settlementSignature).toBeTruthy()
    expect(await tokenBalance(conn, fx.net.mint as Address, fx.client.address)).toBe(before)
    expect(await conn.getAccountInfo(new PublicKey(job.lock!.vault))).toBeNull()
  })

  it('rejects a malformed spec naming the field, and a client without funds, before queueing', async () => {
    const kiln = createKilnClient({ url: fx.net.api, identity: fx.client })
    const before = (await kiln.list({ limit: 500 })).length
    await expect(
      kiln.submit({ image: 'kiln/matmul:1', maxPricePerHour: 1_000_000, resources: { memoryMb: 1 } }),
    ).rejects.toMatchObject({
      kind: 'PAYLOAD_INVALID',
      context: { issues: [expect.objectContaining({ path: 'resources.memoryMb' })] },
    })
    const poor = createKilnClient({ url: fx.net.api, identity: Identity.generate() })
    await expect(poor.submit({ image: 'kiln/matmul:1', maxPricePerHour: 1_000_000 })).rejects.toMatchObject({
      kind: 'INSUFFICIENT_FUNDS',
    })
    expect((await kiln.list({ limit: 500 })).length).toBe(before)
    expect(existsSync(fx.net.dataDir)).toBe(true)
  })
})
