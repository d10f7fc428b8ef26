import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stripVTControlCharacters } from 'node:util'
import { describe, expect, it } from 'vitest'
import { run } from '@kiln/client-cli'
import { formatAmount, Identity, saveIdentity, TEST_TOKEN } from '@kiln/protocol'
import { createKilnClient } from '@kiln/sdk'
import { useNetwork } from '../support/use-network.ts'

// At most 1.00/h for 120 s; the provider asks 0.36/h.
const SPEC = {
  image: 'kiln/busybox:1',
  command: ['sh', '-c', 'echo hi > /out/hi.txt'],
  resources: { cpu: 0.5, memoryMb: 64 },
  maxPricePerHour: 1_000_000,
  timeoutSec: 120,
}
const money = (n: number) => formatAmount(n, TEST_TOKEN)

/** What a new user reads: every amount in one format and unit, ceilings said to be ceilings, what happened said plainly. */
describe("the kiln CLI's money and words, on a real network", () => {
  // The harness turns spot-checks off (KILN_SPOT_CHECK_P=0): one provider is enough.
  const fx = useNetwork({ providers: 1, pricePerHour: 360_000 })

  const cli = async (who: Identity, ...args: string[]) => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-money-'))
    saveIdentity(join(dir, 'id.json'), who)
    writeFileSync(join(dir, 'job.json'), JSON.stringify(SPEC))
    const out: string[] = []
    const code = await run(
      [
        '--api',
        fx.net.api,
        '--keypair',
        join(dir, 'id.json'),
        ...args.map((a) => a.replace('JOB', join(dir, 'job.json'))),
      ],
      { out: (l) => out.push(l), err: (l) => out.push(l) },
      {},
    )
    return { code, text: stripVTControlCharacters(out.join('\n')), dir }
  }

  it("quotes ceilings as ceilings, then shows the matched provider's price, lock and bond, and what was paid", async () => {
    expect((await createKilnClient({ url: fx.net.api, identity: fx.client }).info()).token).toEqual({
      symbol: 'tUSDC',
      decimals: 6,
    })
    const q = await cli(fx.client, 'quote', 'JOB')
    expect(q.code).toBe(0)
    // 1.00/h for 120 s: 0.033334 at most, and a bond of at most 10 times that.
    expect(q.text).toContain('max cost: at most 0.033334 tUSDC, at your max price 1.00 tUSDC/h for 120 s')
    expect(q.text).toContain('provider bond: at most 0.33334 tUSDC;')

    const s = await cli(fx.client, 'submit', 'JOB', '--out', mkdtempSync(join(tmpdir(), 'kiln-money-out-')))
    expect(s.code).toBe(0)
    // 0.36/h for 120 s: the lock is 0.012 and the bond 0.12, as the chain then holds.
    expect(s.text).toMatch(
      /matched provider \w+ at 0\.36 tUSDC\/h \(your max 1\.00 tUSDC\/h\): lock 0\.012 tUSDC for 120 s, its bond 0\.12 tUSDC/,
    )
    expect(s.text).toMatch(/locked 0\.012 tUSDC in escrow vault [1-9A-HJ-NP-Za-km-z]{32,44} \(tx /)
    expect(s.text).not.toMatch(/undefined|NaN|\d\.\d{7}|\b\d{5,}\/h/)
    const jobId = /submitted (job_\w+)/.exec(s.text)![1]!
    const job = await createKilnClient({ url: fx.net.api, identity: fx.client }).get(jobId)
    const m = job.settlement!
    expect(s.text).toContain(
      `done: paid ${money(m.work)} for the work (${money(m.toProviderForWork)} to the provider, ${money(m.fee)} fee); refunded ${money(m.refunded)} of the lock; bond 0.12 tUSDC returned to the provider`,
    )

    const st = await cli(fx.client, 'status', jobId)
    expect(st.code).toBe(0)
    expect(st.text).toMatch(new RegExp(`paid\\s+${money(m.work).replace('.', '\\.')} for the work`))
    expect(st.text).toMatch(/price\s+0\.36 tUSDC\/h/)
    expect(st.text).toMatch(/bond\s+0\.12 tUSDC returned to the provider/)
  })

  it("refuses a client short of funds in the coin's words, and a job id that does not exist in one line", async () => {
    const poor = Identity.generate()
    await fx.net.fund(poor.address, { lamports: 1_000_000_000, tokens: 10_000 })
    const r = await cli(poor, 'submit', 'JOB')
    expect(r.code).toBe(3)
    expect(r.text).toContain(
      `the job may cost up to 0.033334 tUSDC (its max price 1.00 tUSDC/h for 120 s); ${poor.address} holds 0.01 tUSDC, of which 0.00 tUSDC is reserved by its jobs not yet locked: it needs 0.023334 tUSDC more`,
    )

    const nope = await cli(fx.client, 'status', 'job_0000000000')
    expect(nope.code).toBe(3)
    expect(nope.text.split('\n')).toHaveLength(1)
    expect(nope.text).toMatch(/job_0000000000/)
  })
})
