import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stripVTControlCharacters } from 'node:util'
import { Connection } from '@solana/web3.js'
import { describe, expect, it } from 'vitest'
import { run } from '@kiln/client-cli'
import { tokenBalance } from '@kiln/escrow'
import { Identity, saveIdentity, type Address } from '@kiln/protocol'
import { createKilnClient } from '@kiln/sdk'
import { waitFor } from '../support/network.ts'
import { cheaterAmong, useNetwork } from '../support/use-network.ts'

const spec = (i: number, p: number) => ({
  name: `answer-${i}`,
  image: 'kiln/busybox:1',
  command: ['sh', '-c', 'echo "answer $((6*7)) for $SEED" > /out/answer.txt'],
  env: { SEED: String(i) },
  resources: { cpu: 0.5, memoryMb: 64 },
  maxPricePerHour: 1_000_000,
  timeoutSec: 30,
  verification: { p },
})

/**
 * A client need not stay: `kiln submit --no-wait` returns at once, and `kiln watch` later
 * locks what waits for its funds, co-signs what is owed to it (a caught provider's bond is
 * paid only with the client's signature) and fetches the output. The tests run in order: the
 * first catches the cheater, so (by the marketplace's reputation floor) the second runs honestly.
 */
describe('a client that walks away and comes back with kiln watch', () => {
  // The cheater is the cheapest: it gets the job's own run.
  const fx = useNetwork(cheaterAmong(3, 'alter'), 10_000_000)

  const cli = async (dir: string, ...args: string[]) => {
    const out: string[] = []
    const code = await run(['--api', fx.net.api, '--keypair', join(dir, 'id.json'), ...args], {
      out: (l) => out.push(l),
      err: (l) => out.push(l),
    })
    return { code, text: stripVTControlCharacters(out.join('\n')), out }
  }

  it("collects a caught provider's bond when it comes back after the verdict", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-watch-'))
    saveIdentity(join(dir, 'id.json'), fx.client)
    const kiln = createKilnClient({ url: fx.net.api, identity: fx.client })
    const conn = new Connection(fx.net.rpcUrl, 'confirmed')
    const cheater = fx.net.providers[0]!.info.address as string
    const { jobId } = await kiln.submit(spec(6, 1))
    // A client that locks its runs and then leaves: it never co-signs.
    const locked = new Set<string>()
    await waitFor(
      async () => {
        const job = await kiln.get(jobId)
        const runs = await kiln.runs(jobId)
        for (const r of runs) {
          if (r.state === 'matched' && r.lock && !locked.has(r.lock.vault)) {
            locked.add(r.lock.vault)
            await kiln.lockRun(job, r)
          }
        }
        // Every other run settled (their refunds are in the balance below); the slash alone waits for us.
        return (
          runs.some((r) => r.settleOutcome === 'caught' && r.pendingCosign?.action === 'slash') &&
          runs.every((r) => r.settleOutcome === 'caught' || r.settlementSignature !== null)
        )
      },
      120_000,
      'the slash to wait for the client',
    )
    const waiting = (await kiln.runs(jobId)).find((r) => r.settleOutcome === 'caught')!
    expect(waiting.provider).toBe(cheater)
    expect(waiting.settlementSignature).toBeNull()
    const before = await tokenBalance(conn, fx.net.mint as Address, fx.client.address)

    const w = await cli(dir, 'watch', jobId, '--out', dir)
    expect(w.code).toBe(0)
    expect(w.text).toMatch(/caught .*its bond slashed to you/)
    const slashed = (await kiln.runs(jobId)).find((r) => r.settleOutcome === 'caught')!
    expect(slashed.settlementSignature).toMatch(/^[1-9A-HJ-NP-Za-km-z]{80,90}$/)
    expect(slashed.refundedToClient).toBe(slashed.lock!.amount + slashed.bond!)
    expect(await tokenBalance(conn, fx.net.mint as Address, fx.client.address)).toBe(before + slashed.refundedToClient!)
    expect(readFileSync(join(dir, jobId, 'out', 'answer.txt'), 'utf8')).toBe('answer 42 for 6\n')
  }, 180_000)

  it('locks, runs and fetches a job submitted with --no-wait, and only for its owner (on an honest provider: the cheater is suspended by now)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-watch-'))
    saveIdentity(join(dir, 'id.json'), fx.client)
    writeFileSync(join(dir, 'job.json'), JSON.stringify(spec(5, 0)))
    const kiln = createKilnClient({ url: fx.net.api, identity: fx.client })

    const sub = await cli(dir, '--json', 'submit', '--no-wait', join(dir, 'job.json'))
    expect(sub.code).toBe(0)
    const { jobId } = JSON.parse(sub.out[0]!) as { jobId: string }
    // Matched, and there it stays: only the client's key can lock its funds.
    await waitFor(async () => (await kiln.get(jobId)).state === 'matched', 30_000, 'the job to be matched')
    await new Promise((r) => setTimeout(r, 1500))
    expect((await kiln.get(jobId)).state).toBe('matched')

    // Somebody else cannot take it up.
    const other = mkdtempSync(join(tmpdir(), 'kiln-other-'))
    saveIdentity(join(other, 'id.json'), Identity.generate())
    const theirs = await cli(other, 'watch', jobId)
    expect(theirs.code).toBe(3)
    expect(theirs.text).toMatch(/NOT_JOB_OWNER|only its owner/)

    const w = await cli(dir, 'watch', jobId, '--out', dir)
    expect(w.code).toBe(0)
    expect(w.text).toMatch(/locked \d.* tUSDC in escrow vault [1-9A-HJ-NP-Za-km-z]{32,44} /)
    expect(w.text).toMatch(/done: paid .* for the work/)
    expect((await kiln.get(jobId)).provider).not.toBe(fx.net.providers[0]!.info.address)
    expect(readFileSync(join(dir, jobId, 'out', 'answer.txt'), 'utf8')).toBe('answer 42 for 5\n')
    // Watching a finished job again is quick and says the same.
    const again = await cli(dir, '--json', 'watch', jobId, '--out', dir)
    expect(again.code).toBe(0)
    expect(JSON.parse(again.out[0]!)).toMatchObject({ ok: true, job: { id: jobId, state: 'done' } })
  }, 120_000)
})
