import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import type { Browser } from 'playwright-core'
import { launchChromium } from '../support/browser.ts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { formatAmount, Identity, TEST_TOKEN } from '@kiln/protocol'
import { createKilnClient } from '@kiln/sdk'
import { startNetwork, type Network } from '../support/network.ts'

const ROOT = resolve(import.meta.dirname, '..', '..')

/** The marketplace web app in real Chromium, against a live network. */
describe('marketplace web app', () => {
  let net: Network
  let browser: Browser
  beforeAll(async () => {
    if (!existsSync(join(ROOT, 'apps/marketplace/.next/BUILD_ID')))
      throw new Error('web app not built: run npm run setup (or npm run build -w @kiln/marketplace)')
    net = await startNetwork({ providers: 2, web: true })
    browser = await launchChromium()
  })
  afterAll(async () => {
    await browser?.close()
    await net?.stop()
  })

  it('shows the live providers from their signed adverts', async () => {
    const page = await browser.newPage()
    await page.goto(net.api)
    await page.getByTestId('provider-count').filter({ hasText: '2' }).waitFor({ timeout: 15_000 })
    const rows = page.getByTestId('providers').locator('tbody tr')
    expect(await rows.count()).toBe(2)
    const text = await page.getByTestId('providers').innerText()
    expect(text).toMatch(/CPU only/)
    expect(text).toMatch(/available/)
    await page.screenshot({ path: join(net.dataDir, 'marketplace.png') })
  })

  it("lists a finished job with what the client paid for the work, the fee, the bond apart and whether it was checked, in the CLI's words", async () => {
    const client = Identity.generate()
    await net.fund(client.address, { lamports: 2_000_000_000, tokens: 5_000_000 })
    const kiln = createKilnClient({ url: net.api, identity: client })
    const { jobId } = await kiln.submit({
      image: 'kiln/matmul:1',
      command: ['64'],
      maxPricePerHour: 1_000_000,
      timeoutSec: 60,
    })
    const job = await kiln.watch(jobId)
    expect(job.state).toBe('done')
    const page = await browser.newPage()
    await page.goto(net.api)
    const row = page.getByTestId('jobs').locator('tbody tr', { hasText: jobId })
    await row.waitFor({ timeout: 15_000 })
    const cells = await row.locator('td').allInnerTexts()
    // The same formatter and unit as the CLI: the devchain's test stablecoin.
    const money = (n: number) => formatAmount(n, TEST_TOKEN)
    const s = job.settlement!
    // job, image, state, provider, checked, paid (the client's pay for the work), fee, refunded, bond, tx
    expect(cells[2]).toBe('done')
    expect(cells[4]).toBe('—')
    expect(cells[5]).toBe(money(s.work))
    expect(s.work).toBe(job.paidToProvider! - job.bond! + job.fee!)
    expect(cells[6]).toBe(money(job.fee!))
    expect(cells[7]).toBe(money(job.refundedToClient!))
    expect(cells[8]).toBe(`${money(job.bond!)} returned`)
  })
})
