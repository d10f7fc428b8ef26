import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stripVTControlCharacters } from 'node:util'
import { MULTISIG_SIZE } from '@solana/spl-token'
import { Connection, PublicKey } from '@solana/web3.js'
import { describe, expect, it } from 'vitest'
import { run } from '@kiln/client-cli'
import { saveIdentity } from '@kiln/protocol'
import { createKilnClient } from '@kiln/sdk'
import { waitFor } from '../support/network.ts'
import { useNetwork } from '../support/use-network.ts'

const LOCK_WINDOW_MS = 4_000
const PARK_AFTER = 3

/**
 * A job its owner never locks (`kiln submit --no-wait`, then gone) is matched, lapses and is
 * matched again; after PARK_AFTER lapses in a row it is no longer placed, says what would get
 * it going, and has cost the marketplace no vault. It stays parked across a coordinator restart
 * (the database says so) and runs once its owner is back.
 */
describe('a job its owner never locks', () => {
  // Postgres, so that this test can tell the coordinator the owner is back (the API does it for kiln watch).
  const fx = useNetwork({
    providers: 1,
    lockWindowMs: LOCK_WINDOW_MS,
    postgres: true,
    marketEnv: { KILN_PARK_AFTER_LAPSES: String(PARK_AFTER) },
  })

  const cli = async (dir: string, ...args: string[]) => {
    const out: string[] = []
    const code = await run(['--api', fx.net.api, '--keypair', join(dir, 'id.json'), ...args], {
      out: (l) => out.push(l),
      err: (l) => out.push(l),
    })
    return { code, text: stripVTControlCharacters(out.join('\n')), out }
  }

  it(`stops being placed after ${PARK_AFTER} lapses, says so, leaves no vault, stays parked across a restart, and runs once its owner is back`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-parked-'))
    saveIdentity(join(dir, 'id.json'), fx.client)
    writeFileSync(
      join(dir, 'job.json'),
      JSON.stringify({
        name: 'parked',
        image: 'kiln/busybox:1',
        command: ['sh', '-c', 'echo back > /out/answer.txt'],
        resources: { cpu: 0.5, memoryMb: 64 },
        maxPricePerHour: 1_000_000,
        timeoutSec: 30,
        verification: { p: 0 },
      }),
    )
    const kiln = createKilnClient({ url: fx.net.api, identity: fx.client })
    const conn = new Connection(fx.net.rpcUrl, 'confirmed')
    const arbiter = new PublicKey(fx.net.arbiter)
    const arbiterBefore = await conn.getBalance(arbiter)

    const sub = await cli(dir, '--json', 'submit', '--no-wait', join(dir, 'job.json'))
    expect(sub.code).toBe(0)
    const { jobId } = JSON.parse(sub.out[0]!) as { jobId: string }

    // Every placement names a vault for the client to lock; nobody does.
    const vaults = new Set<string>()
    const parked = new RegExp(`waiting for your lock: run kiln watch ${jobId}`)
    await waitFor(
      async () => {
        const job = await kiln.get(jobId)
        if (job.lock) vaults.add(job.lock.vault)
        return job.state === 'queued' && parked.test(job.waiting ?? '')
      },
      PARK_AFTER * LOCK_WINDOW_MS + 30_000,
      'the job to be parked',
    )
    expect((await kiln.get(jobId)).attempt).toBe(PARK_AFTER)
    expect(vaults.size).toBe(PARK_AFTER)

    // Two more lock windows: not placed again, and kiln status says what to do.
    await new Promise((r) => setTimeout(r, 2 * LOCK_WINDOW_MS))
    expect(await kiln.get(jobId)).toMatchObject({ state: 'queued', attempt: PARK_AFTER })
    const status = await cli(dir, 'status', jobId)
    expect(status.text).toMatch(parked)

    // Nothing was left on chain: no vault was ever made, and the arbiter paid only for the pair's multisig.
    const open = await conn.getMultipleAccountsInfo([...vaults].map((v) => new PublicKey(v)))
    expect(open.filter((a) => a !== null)).toHaveLength(0)
    const multisigRent = await conn.getMinimumBalanceForRentExemption(MULTISIG_SIZE)
    expect(arbiterBefore - (await conn.getBalance(arbiter))).toBe(multisigRent + 5_000)

    // A restarted coordinator keeps it parked, even with the provider free and known again.
    await fx.net.restartMarketplace(0)
    await waitFor(
      async () => (await kiln.providers()).some((p) => p.address === fx.net.providers[0]!.info.address),
      30_000,
      'the provider to be seen again',
    )
    await new Promise((r) => setTimeout(r, LOCK_WINDOW_MS))
    expect(await kiln.get(jobId)).toMatchObject({
      state: 'queued',
      attempt: PARK_AFTER,
      waiting: expect.stringMatching(parked),
    })

    // The owner is back: kiln watch's first read (watch: true) places it again; it is locked and run.
    const w = await cli(dir, 'watch', jobId, '--out', dir)
    expect(w.code).toBe(0)
    expect(w.text).toMatch(/done: paid .* for the work/)
    expect(readFileSync(join(dir, jobId, 'out', 'answer.txt'), 'utf8')).toBe('back\n')
    const done = await kiln.get(jobId)
    expect(done.attempt).toBeGreaterThan(PARK_AFTER)
    // The run's own vault was closed by its settlement, its rent back with the client.
    expect(await conn.getAccountInfo(new PublicKey(done.lock!.vault))).toBeNull()
  }, 240_000)
})
