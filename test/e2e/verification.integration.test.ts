import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stripVTControlCharacters } from 'node:util'
import { describe, expect, it } from 'vitest'
import { Connection } from '@solana/web3.js'
import { tokenBalance } from '@kiln/escrow'
import { saveIdentity, type Address } from '@kiln/protocol'
import { run } from '@kiln/client-cli'
import { createKilnClient, unpackOutput, type KilnClient, type RunDetails } from '@kiln/sdk'
import { PROVIDER_FUNDS, waitFor } from '../support/network.ts'
import { cheaterAmong, useNetwork } from '../support/use-network.ts'

const P = 0.5
const JOBS = 24

/** The smallest and largest counts a Binomial(n, p) stays within except with probability alpha. */
function binomialBounds(n: number, p: number, alpha: number): [number, number] {
  const pmf: number[] = []
  let c = 1
  for (let k = 0; k <= n; k++) {
    pmf.push(c * p ** k * (1 - p) ** (n - k))
    c = (c * (n - k)) / (k + 1)
  }
  let lo = 0
  for (let tail = 0; tail + (pmf[lo] ?? 0) <= alpha / 2; lo++) tail += pmf[lo] ?? 0
  let hi = n
  for (let tail = 0; tail + (pmf[hi] ?? 0) <= alpha / 2; hi--) tail += pmf[hi] ?? 0
  return [lo, hi]
}

async function answer(kiln: KilnClient, digest: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-verify-'))
  await unpackOutput(await kiln.download(digest), dir)
  return readFileSync(join(dir, 'answer.txt'), 'utf8')
}

const spec = (i: number) => ({
  name: `answer-${i}`,
  image: 'kiln/busybox:1',
  command: ['sh', '-c', 'echo "answer $((6*7)) for $SEED" > /out/answer.txt'],
  env: { SEED: String(i) },
  resources: { cpu: 0.5, memoryMb: 64 },
  maxPricePerHour: 1_000_000,
  timeoutSec: 30,
  verification: { p: P },
})

/**
 * A provider that alters its outputs (the real provider app with its runtime wrapped) among
 * two honest ones, real containers, the devchain escrow. Every job of it that was spot-checked
 * is caught and slashed; none that was not; honest providers never are.
 */
describe('verification catches a cheating provider', () => {
  // The cheater is the cheapest, so it gets the job's own run whenever it is free.
  // No reputation floor here: the catch rate is measured over every job, not just until the first catch.
  const fx = useNetwork(
    cheaterAmong(3, 'alter', {
      marketEnv: { KILN_VERIFY_SECRET: 'ab'.repeat(32), KILN_FEE_BPS: '100', KILN_MIN_REPUTATION: '0' },
    }),
    10_000_000,
  )

  it(`over ${JOBS} jobs at p=${P}: caught exactly when checked, slashed to the client, outvoted result replaced`, async () => {
    const kiln = createKilnClient({ url: fx.net.api, identity: fx.client })
    const conn = new Connection(fx.net.rpcUrl, 'confirmed')
    const mint = fx.net.mint as Address
    const cheater = fx.net.providers[0]!.info.address as string
    const honest = fx.net.providers.slice(1).map((p) => p.info.address as string)
    const quote = await kiln.quote(spec(0))
    expect(quote.p).toBe(P)
    expect(quote.lines.join('\n')).toMatch(/chance to catch a provider that cheats 20 times: 100\.0%/)

    const ids = await Promise.all(Array.from({ length: JOBS }, (_, i) => kiln.submit(spec(i)).then((r) => r.jobId)))
    const jobs = await Promise.all(ids.map((id) => kiln.watch(id, { pollMs: 1000 })))
    const runs = await Promise.all(ids.map((id) => kiln.runs(id)))

    let checked = 0
    let caughtRuns = 0
    let expectedClient = fx.funds
    for (const [i, job] of jobs.entries()) {
      const fam = runs[i] as RunDetails[]
      const isChecked = fam.some((r) => r.role === 'replica')
      if (isChecked) checked++
      const ran = fam.filter((r) => r.settleOutcome !== null && r.provider)
      const cheaterRan = ran.some((r) => r.provider === cheater)
      const caught = ran.filter((r) => r.settleOutcome === 'caught')
      // Exactly: a cheat in a checked job is caught, in an unchecked job it cannot be, honest runs never are.
      expect(caught.map((r) => r.provider)).toEqual(isChecked && cheaterRan ? [cheater] : [])
      caughtRuns += caught.length
      expect(job.state).toBe('done')
      expect(job.verification?.verdict).toBe(!isChecked ? 'unchecked' : cheaterRan ? 'decided' : 'agree')
      if (isChecked && cheaterRan) {
        // Two honest runs outvoted the cheater; a tie-break was needed, and the client got the honest output.
        expect(fam.map((r) => r.role).sort()).toEqual(['primary', 'replica', 'tiebreak'])
        expect(await answer(kiln, job.outputDigest!)).toBe(`answer 42 for ${i}\n`)
        const slash = caught[0]!
        expect(slash.paidToProvider).toBe(0)
        expect(slash.refundedToClient).toBe(slash.lock!.amount + slash.bond!)
      }
      for (const r of fam) if (r.lock && r.lockSignature) expectedClient += (r.refundedToClient ?? 0) - r.lock.amount
      for (const r of fam) if (r.provider && honest.includes(r.provider)) expect(r.settleOutcome).not.toBe('caught')
    }
    const [lo, hi] = binomialBounds(JOBS, P, 1e-6)
    expect(checked).toBeGreaterThanOrEqual(lo)
    expect(checked).toBeLessThanOrEqual(hi)
    // The cheater ran a third of the work or more; at p=0.5 it was caught at least once.
    expect(caughtRuns).toBeGreaterThan(0)

    // Money adds up to the unit: the client paid for what was honestly run and got every slashed bond.
    expect(await tokenBalance(conn, mint, fx.client.address)).toBe(expectedClient)
    const slashed = runs
      .flat()
      .filter((r) => r.settleOutcome === 'caught')
      .reduce((a, r) => a + (r.bond ?? 0), 0)
    const cheaterEarned = runs
      .flat()
      .filter((r) => r.provider === cheater && r.settleOutcome !== 'caught')
      .reduce((a, r) => a + (r.paidToProvider ?? 0) - (r.bond ?? 0), 0)
    expect(await tokenBalance(conn, mint, cheater as Address)).toBe(PROVIDER_FUNDS - slashed + cheaterEarned)

    // The cheater signed none of its slashes, and was told of each: its own journal shows them.
    const slashedJobs = ids.filter((_, i) => (runs[i] as RunDetails[]).some((r) => r.settleOutcome === 'caught'))
    const journal = (id: string) =>
      JSON.parse(readFileSync(join(fx.net.dataDir, 'provider-0', 'jobs', `${id}.json`), 'utf8')) as {
        settlement?: { action: string; toProvider: number; signature?: string }
      }
    await waitFor(
      async () => slashedJobs.every((id) => journal(id).settlement?.action === 'slash'),
      15_000,
      'the cheater to record its slashes',
    )
    // It believed each notice only once it found the slashing transaction on chain, and kept its signature.
    for (const id of slashedJobs)
      expect(journal(id).settlement).toMatchObject({
        toProvider: 0,
        signature: expect.stringMatching(/^[1-9A-HJ-NP-Za-km-z]{80,90}$/) as unknown,
      })

    // Reputation: caught is worse than any amount of honest work.
    const listed = await kiln.providers()
    const score = (a: string) => listed.find((p) => p.address === a)?.reputation ?? NaN
    for (const h of honest) expect(score(h)).toBeGreaterThan(0.5)
    expect(score(cheater)).toBeLessThan(0.2)
  }, 420_000)
  it('kiln quote and kiln status show the guarantee before paying and the runs to their owner', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-cli-'))
    const keypair = join(dir, 'id.json')
    saveIdentity(keypair, fx.client)
    const file = join(dir, 'job.json')
    writeFileSync(file, JSON.stringify(spec(99)))
    const cli = async (...args: string[]) => {
      const out: string[] = []
      const code = await run(['--api', fx.net.api, '--keypair', keypair, ...args], {
        out: (l) => out.push(l),
        err: (l) => out.push(l),
      })
      return { code, out }
    }
    const q = await cli('--json', 'quote', file)
    expect(q.code).toBe(0)
    const quote = (
      JSON.parse(q.out[0]!) as {
        quote: { p: number; detectK: number; cheatingPays: boolean; required: number; maxCost: number; feeBps: number }
      }
    ).quote
    expect(quote).toMatchObject({ p: P, cheatingPays: false, feeBps: 100 })
    expect(quote.detectK).toBeCloseTo(1 - (1 - P) ** 20, 12)
    expect(quote.required).toBe(2 * quote.maxCost)
    // The human form says it in words, before anything is paid.
    const human = await cli('submit', file, '--out', dir)
    expect(human.code).toBe(0)
    // CI sets CI=1, which turns colours on even without a terminal: read the words, not the escapes.
    const text = stripVTControlCharacters(human.out.join('\n'))
    expect(text).toContain('submitted job_')
    expect(text.indexOf('chance to catch a provider that cheats 20 times')).toBeLessThan(text.indexOf('submitted job_'))
    expect(text).toMatch(/cheating does not pay/)
    const jobId = /submitted (job_[0-9a-z]+)/.exec(text)![1]!
    const st = await cli('--json', 'status', jobId)
    const shown = JSON.parse(st.out[0]!) as {
      verification: { verdict: string }
      runs: { role: string }[]
      fee: number
      bond: number
    }
    expect(shown.runs[0]!.role).toBe('primary')
    expect(shown.verification.verdict).toMatch(shown.runs.length > 1 ? /^(agree|decided)$/ : /^unchecked$/)
    expect(shown.bond).toBeGreaterThan(0)
    // Somebody else asking sees the job, but not its runs.
    const other = await run(['--api', fx.net.api, '--keypair', join(dir, 'other.json'), 'keygen'], {
      out: () => {},
      err: () => {},
    })
    expect(other).toBe(0)
    const theirs: string[] = []
    await run(['--api', fx.net.api, '--keypair', join(dir, 'other.json'), '--json', 'status', jobId], {
      out: (l) => theirs.push(l),
      err: () => {},
    })
    expect(JSON.parse(theirs[0]!)).not.toHaveProperty('runs')
  }, 120_000)
})

/** A receipt that lies about its output, or whose signature does not verify, is never paid. */
describe.each([
  { mode: 'bad-digest', reason: /delivered output hashes to/ },
  { mode: 'bad-signature', reason: /signature does not verify/ },
] as const)('a receipt with a $mode is rejected', ({ mode, reason }) => {
  const fx = useNetwork(cheaterAmong(2, mode))

  it('refunds the run, returns the bond, rules the provider out and runs the job elsewhere', async () => {
    const kiln = createKilnClient({ url: fx.net.api, identity: fx.client })
    const conn = new Connection(fx.net.rpcUrl, 'confirmed')
    const cheater = fx.net.providers[0]!.info.address as string
    const { jobId } = await kiln.submit({ ...spec(7), verification: { p: 0 } })
    const job = await kiln.watch(jobId, { pollMs: 500 })
    expect(job.state).toBe('done')
    expect(job.provider).toBe(fx.net.providers[1]!.info.address)
    const rejected = job.events.find((e) => reason.test(e.reason))
    expect(rejected?.to).toBe('settling')
    expect(job.attempt).toBe(2)
    expect(await answer(kiln, job.outputDigest!)).toBe('answer 42 for 7\n')
    // Nothing was paid to the cheater and its bond came back: its wallet is as funded.
    expect(await tokenBalance(conn, fx.net.mint as Address, cheater as Address)).toBe(PROVIDER_FUNDS)
  }, 240_000)
})
