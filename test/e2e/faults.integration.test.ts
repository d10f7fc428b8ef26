import { Connection, PublicKey } from '@solana/web3.js'
import { describe, expect, it } from 'vitest'
import { createMeshNode } from '@kiln/mesh'
import {
  CoordinatorFrame,
  Identity,
  JobSpec,
  Kind,
  Protocol,
  ProviderFrame,
  seal,
  type Address,
  type Lease,
} from '@kiln/protocol'
import { createKilnClient } from '@kiln/sdk'
import { waitFor } from '../support/network.ts'
import { useNetwork } from '../support/use-network.ts'

/** Faults the foundation must already survive, on the real network. */
describe('faults', () => {
  const fx = useNetwork({ providers: 0 })

  it('keeps a job queued while no provider is online, says why, and runs it when one comes', async () => {
    const kiln = createKilnClient({ url: fx.net.api, identity: fx.client })
    const { jobId } = await kiln.submit({
      image: 'kiln/matmul:1',
      command: ['64'],
      maxPricePerHour: 1_000_000,
      timeoutSec: 60,
    })
    await waitFor(async () => (await kiln.get(jobId)).waiting !== null, 10_000, 'the waiting reason')
    const waiting = await kiln.get(jobId)
    expect(waiting.state).toBe('queued')
    expect(waiting.waiting).toMatch(/no provider is online/)
    await new Promise((r) => setTimeout(r, 2000))
    expect((await kiln.get(jobId)).state).toBe('queued')
    const p = await fx.net.startProvider(0)
    const job = await kiln.watch(jobId)
    expect(job.state).toBe('done')
    expect(job.provider).toBe(p.info.address)
  })

  it('a provider refuses a lease not signed by its marketplace, and runs nothing', async () => {
    const provider = fx.net.providers[0] ?? (await fx.net.startProvider(1))
    const mallory = Identity.generate()
    const node = createMeshNode({ identity: mallory, bootstrap: fx.net.meshAddrs })
    await node.start()
    try {
      const addr = provider.info.address as Address
      const ch = await node.open(addr, Protocol.job, { addrs: provider.info.mesh as string[] })
      const lease: Lease = {
        jobId: 'job_0000000000forged',
        client: fx.client.address,
        provider: addr,
        arbiter: mallory.address,
        spec: JobSpec.parse({
          image: 'kiln/busybox:1',
          command: ['sh', '-c', 'echo pwned > /out/x'],
          maxPricePerHour: 1,
        }),
        pricePerHour: 1_000_000,
        lockAmount: 1,
        mint: fx.net.mint as Address,
        multisig: mallory.address,
        vault: mallory.address,
        escrowId: 'job_0000000000forgeda1',
        startBy: Date.now() + 60_000,
        bond: 0,
        feeBps: 0,
      }
      await ch.sendJson(CoordinatorFrame.parse({ t: 'lease', envelope: seal(mallory, Kind.lease, lease) }))
      const reply = ProviderFrame.parse(await ch.nextJson(10_000))
      expect(reply).toMatchObject({ t: 'refused', error: { kind: 'ENVELOPE_WRONG_SIGNER' } })
      await ch.close()
    } finally {
      await node.stop()
    }
  })
})

describe('Redis restarted and emptied', () => {
  const fx = useNetwork({ providers: 0 })

  it('loses no job: queued work is rebuilt from the database and runs once a provider comes', async () => {
    const kiln = createKilnClient({ url: fx.net.api, identity: fx.client })
    const ids: string[] = []
    for (let i = 0; i < 3; i++)
      ids.push(
        (await kiln.submit({ image: 'kiln/matmul:1', command: ['32'], maxPricePerHour: 1_000_000, timeoutSec: 30 }))
          .jobId,
      )
    await fx.net.redis.crashAndRestart()
    await fx.net.startProvider(0)
    const jobs = await Promise.all(ids.map((id) => kiln.watch(id)))
    expect(jobs.map((j) => j.state)).toEqual(['done', 'done', 'done'])
    for (const j of jobs) expect(j.events.filter((e) => e.to === 'matched')).toHaveLength(1)
  })
})

describe('cancellation', () => {
  const fx = useNetwork({ providers: 1 })

  it('stops a running job: the provider is paid for the seconds it ran, the rest is refunded, the job ends cancelled', async () => {
    const kiln = createKilnClient({ url: fx.net.api, identity: fx.client })
    const { jobId } = await kiln.submit({
      image: 'kiln/busybox:1',
      command: ['sh', '-c', 'echo working; sleep 30'],
      resources: { cpu: 1, memoryMb: 64 },
      maxPricePerHour: 1_000_000,
      timeoutSec: 60,
    })
    const watching = kiln.watch(jobId)
    await waitFor(async () => (await kiln.get(jobId)).state === 'running', 30_000, 'the job to run')
    await new Promise((r) => setTimeout(r, 1500))
    await kiln.cancel(jobId)
    const job = await watching
    expect(job.state).toBe('cancelled')
    // The provider: its seconds less the fee, and its bond back; the client: the rest of its lock.
    const work = job.paidToProvider! - job.bond! + job.fee!
    expect(work).toBeGreaterThan(0)
    expect(work + job.refundedToClient!).toBe(job.lock!.amount)
    expect(job.refundedToClient!).toBeGreaterThan(work)
    expect(job.settlementSignature).toBeTruthy()
    // Stopped well before its 30 s sleep.
    expect(job.endedAt! - job.startedAt!).toBeLessThan(20_000)
  })

  it('cancels a queued job at once, and a finished one not at all', async () => {
    const kiln = createKilnClient({ url: fx.net.api, identity: fx.client })
    const other = createKilnClient({ url: fx.net.api, identity: Identity.generate() })
    const { jobId } = await kiln.submit({
      image: 'kiln/matmul:1',
      command: ['16'],
      maxPricePerHour: 1_000_000,
      timeoutSec: 30,
      resources: { memoryMb: 1_000_000 },
    })
    await expect(other.cancel(jobId)).rejects.toMatchObject({ kind: 'NOT_JOB_OWNER' })
    expect((await kiln.cancel(jobId)).state).toBe('cancelled')
    const { jobId: quick } = await kiln.submit({
      image: 'kiln/matmul:1',
      command: ['16'],
      maxPricePerHour: 1_000_000,
      timeoutSec: 30,
    })
    expect((await kiln.watch(quick)).state).toBe('done')
    expect((await kiln.cancel(quick)).state).toBe('done')
  })

  it('cancels a matched job whose funds were never locked: it ends, and no vault is left', async () => {
    const kiln = createKilnClient({ url: fx.net.api, identity: fx.client })
    const { jobId } = await kiln.submit({
      image: 'kiln/busybox:1',
      command: ['true'],
      maxPricePerHour: 1_000_000,
      timeoutSec: 30,
    })
    await waitFor(async () => (await kiln.get(jobId)).state === 'matched', 30_000, 'the job to be matched')
    const vault = (await kiln.get(jobId)).lock!.vault
    expect((await kiln.cancel(jobId)).state).toBe('cancelled')
    expect(await new Connection(fx.net.rpcUrl, 'confirmed').getAccountInfo(new PublicKey(vault))).toBeNull()
  })
})
