import { Connection } from '@solana/web3.js'
import { describe, expect, it } from 'vitest'
import { tokenBalance } from '@kiln/escrow'
import type { Address } from '@kiln/protocol'
import { createKilnClient } from '@kiln/sdk'
import { PROVIDER_FUNDS, waitFor } from '../support/network.ts'
import { useNetwork } from '../support/use-network.ts'

/** The coordinator killed mid-run and started again: the job still ends exactly once. */
describe('coordinator killed mid-flight', () => {
  const fx = useNetwork({ providers: 1 })

  it('recovers the result from the provider and settles it once', async () => {
    const kiln = createKilnClient({ url: fx.net.api, identity: fx.client })
    const { jobId } = await kiln.submit({
      image: 'kiln/busybox:1',
      command: ['sh', '-c', 'echo started; sleep 4; echo result > /out/result.txt; echo finished'],
      resources: { cpu: 1, memoryMb: 64 },
      maxPricePerHour: 1_000_000,
      timeoutSec: 60,
    })
    const watching = kiln.watch(jobId)
    await waitFor(async () => (await kiln.get(jobId)).state === 'running', 30_000, 'the job to run')
    await fx.net.restartMarketplace(0, { crash: true })
    const job = await watching
    expect(job.state).toBe('done')
    expect(job.attempt).toBe(1)
    expect(job.events.filter((e) => e.to === 'running')).toHaveLength(1)
    expect(job.events.filter((e) => e.to === 'done')).toHaveLength(1)
    expect(job.events.map((e) => e.reason).join('\n')).not.toMatch(/placing the job again/)
    const tar = await kiln.download(job.outputDigest!)
    expect(tar.byteLength).toBeGreaterThan(0)
    const paid = job.paidToProvider!
    expect(paid - job.bond!).toBeGreaterThan(0)
    const conn = new Connection(fx.net.rpcUrl, 'confirmed')
    expect(await tokenBalance(conn, fx.net.mint as Address, fx.client.address)).toBe(
      fx.funds - (job.lock!.amount - job.refundedToClient!),
    )
    expect(await tokenBalance(conn, fx.net.mint as Address, job.provider as Address)).toBe(
      PROVIDER_FUNDS + paid - job.bond!,
    )
  })
})
