import { stripVTControlCharacters } from 'node:util'
import { describe, expect, it } from 'vitest'
import { launchChromium } from '../support/browser.ts'
import { run } from '@kiln/client-cli'
import { saveIdentity } from '@kiln/protocol'
import { createKilnClient } from '@kiln/sdk'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { waitFor } from '../support/network.ts'
import { cheaterAmong, useNetwork } from '../support/use-network.ts'

const spec = (i: number, maxPricePerHour: number, p: number) => ({
  name: `answer-${i}`,
  image: 'kiln/busybox:1',
  command: ['sh', '-c', 'echo "answer $((6*7)) for $SEED" > /out/answer.txt'],
  env: { SEED: String(i) },
  resources: { cpu: 0.5, memoryMb: 64 },
  maxPricePerHour,
  timeoutSec: 30,
  verification: { p },
})

/**
 * The marketplace's reputation floor as shipped (KILN_MIN_REPUTATION, 0.15): one catch takes a
 * provider below it, and from then on it gets no work, whatever its price.
 */
describe('a provider caught cheating is suspended', () => {
  // The cheater is the cheapest: it gets the first job's own run, and it alone fits a job capped below the others' price.
  const fx = useNetwork(cheaterAmong(3, 'alter', { web: true }), 10_000_000)

  it('is caught once, listed as suspended, and given no job afterwards even where it is the only one that fits', async () => {
    const kiln = createKilnClient({ url: fx.net.api, identity: fx.client })
    const cheater = fx.net.providers[0]!.info.address as string
    const listed = async () => (await kiln.providers()).find((p) => p.address === cheater)
    await waitFor(async () => (await kiln.providers()).length === 3, 15_000, 'three providers listed')
    expect(await listed()).toMatchObject({ reputation: 0.5, suspended: false })

    // Checked for sure (p = 1): the cheater runs it, two honest runs outvote it.
    const { jobId: first } = await kiln.submit(spec(1, 1_000_000, 1))
    const done = await kiln.watch(first, { pollMs: 500 })
    expect(done.verification?.verdict).toBe('decided')
    expect((await kiln.runs(first)).filter((r) => r.settleOutcome === 'caught').map((r) => r.provider)).toEqual([
      cheater,
    ])
    const after = await listed()
    expect(after?.suspended).toBe(true)
    expect(after?.reputation).toBeLessThan(0.15)

    // Only the cheater's price fits this job: it waits, and says why, instead of going to the cheater.
    const { jobId: capped } = await kiln.submit(spec(2, 330_000, 0))
    await waitFor(
      async () => /reputation/.test((await kiln.get(capped)).waiting ?? ''),
      15_000,
      'the capped job to wait',
    )
    const waiting = await kiln.get(capped)
    expect(waiting.state).toBe('queued')
    expect(waiting.waiting).toMatch(/1 reputation/)
    await kiln.cancel(capped)
    expect((await kiln.watch(capped, { pollMs: 500 })).state).toBe('cancelled')

    // A client may ask for more than the marketplace's floor: nobody here has a record that good yet.
    const { jobId: picky } = await kiln.submit({ ...spec(4, 1_000_000, 0), minReputation: 0.95 })
    await waitFor(
      async () => /3 reputation/.test((await kiln.get(picky)).waiting ?? ''),
      15_000,
      'the picky job to wait',
    )
    await kiln.cancel(picky)

    // Open to anyone: an honest provider takes it, though the cheater is cheaper and idle.
    const { jobId: open } = await kiln.submit(spec(3, 1_000_000, 0))
    const third = await kiln.watch(open, { pollMs: 500 })
    expect(third.state).toBe('done')
    expect(third.provider).not.toBe(cheater)

    // `kiln providers` says so in words.
    const dir = mkdtempSync(join(tmpdir(), 'kiln-suspended-'))
    saveIdentity(join(dir, 'id.json'), fx.client)
    const out: string[] = []
    expect(
      await run(['--api', fx.net.api, '--keypair', join(dir, 'id.json'), 'providers'], {
        out: (l) => out.push(l),
        err: (l) => out.push(l),
      }),
    ).toBe(0)
    const row = stripVTControlCharacters(out.join('\n'))
      .split('\n')
      .find((l) => l.includes(cheater.slice(0, 8)))
    expect(row).toMatch(/suspended/)

    // And the web app, in real Chromium, marks its row.
    const browser = await launchChromium()
    try {
      const page = await browser.newPage()
      await page.goto(fx.net.api)
      const cell = page.getByTestId('providers').locator('tr', { has: page.locator(`td[title="${cheater}"]`) })
      await cell.filter({ hasText: 'suspended' }).waitFor({ timeout: 15_000 })
      expect(await page.getByTestId('providers').getByText('suspended').count()).toBe(1)
    } finally {
      await browser.close()
    }
  }, 240_000)
})
