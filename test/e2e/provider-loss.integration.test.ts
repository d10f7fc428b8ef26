import { execFileSync } from 'node:child_process'
import { Connection, PublicKey } from '@solana/web3.js'
import { afterAll, describe, expect, it } from 'vitest'
import { tokenBalance } from '@kiln/escrow'
import type { Address } from '@kiln/protocol'
import { createKilnClient, type JobDetails } from '@kiln/sdk'
import { PROVIDER_FUNDS } from '../support/network.ts'
import { useNetwork } from '../support/use-network.ts'

/** A provider process killed mid-job: the job runs again elsewhere and the client pays once. */
describe('provider lost mid-job', () => {
  const fx = useNetwork({ providers: 2 })
  afterAll(async () => {
    // The killed provider could not clean up its container; remove what it left.
    const left = execFileSync('docker', ['ps', '-aq', '--filter', 'label=kiln.managed=1'])
      .toString()
      .split('\n')
      .filter(Boolean)
    if (left.length) execFileSync('docker', ['rm', '-f', ...left])
  })

  it("refunds the first vault with the client's co-signature, re-places the job, and pays only the second provider", async () => {
    const kiln = createKilnClient({ url: fx.net.api, identity: fx.client })
    const conn = new Connection(fx.net.rpcUrl, 'confirmed')
    const { jobId } = await kiln.submit({
      image: 'kiln/busybox:1',
      command: ['sh', '-c', 'echo started; sleep 4; echo finished > /out/result.txt'],
      resources: { cpu: 1, memoryMb: 64 },
      maxPricePerHour: 1_000_000,
      timeoutSec: 60,
    })
    const vaults: string[] = []
    let killed: string | undefined
    const job = await kiln.watch(jobId, {
      onLocked: (_sig, j) => {
        vaults.push(j.lock!.vault)
      },
      onState: (j: JobDetails) => {
        if (j.state === 'running' && !killed) {
          killed = j.provider!
          fx.net.providers.find((p) => p.info.address === killed)!.child.kill('SIGKILL')
        }
      },
    })
    expect(killed).toBeDefined()
    expect(job.error).toBeNull()
    expect(job.state).toBe('done')
    expect(job.attempt).toBe(2)
    expect(job.provider).not.toBe(killed)
    expect(vaults).toHaveLength(2)
    // Both vaults are closed: the first refunded in full, the second paid out.
    for (const v of vaults) expect(await conn.getAccountInfo(new PublicKey(v))).toBeNull()
    const paid = job.paidToProvider!
    expect(paid - job.bond!).toBeGreaterThan(0)
    expect(await tokenBalance(conn, fx.net.mint as Address, fx.client.address)).toBe(
      fx.funds - (job.lock!.amount - job.refundedToClient!),
    )
    // The lost provider is paid nothing, and the refund gave its bond back.
    expect(await tokenBalance(conn, fx.net.mint as Address, killed as Address)).toBe(PROVIDER_FUNDS)
    expect(await tokenBalance(conn, fx.net.mint as Address, job.provider as Address)).toBe(
      PROVIDER_FUNDS + paid - job.bond!,
    )
    const events = (await kiln.get(jobId)).events.map((e) => e.reason).join('\n')
    expect(events).toMatch(/placing the job again/)
  })
})
