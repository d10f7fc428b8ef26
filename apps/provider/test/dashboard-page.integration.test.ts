import type { Browser } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newToken } from '../src/dashboard/auth.ts'
import { startDashboard, type Dashboard } from '../src/dashboard/server.ts'
import { launchChromium } from '../../../test/support/browser.ts'
import { stubControlApi } from './support/control.ts'

/** The owner's page in real Chromium: money in the marketplace's words, with its unit. */
describe('provider dashboard page', () => {
  const token = newToken()
  let d: Dashboard
  let browser: Browser

  beforeAll(async () => {
    d = await startDashboard({
      api: stubControlApi([], { earnings: { jobs: 2, paid: 5, owed: 120_000 } }),
      token,
      port: 0,
      log: { info() {}, warn() {} },
    })
    browser = await launchChromium()
  })
  afterAll(async () => {
    await browser?.close()
    await d?.close()
  })

  it('shows earnings exact to the base unit with the unit named', async () => {
    const page = await browser.newPage()
    await page.goto(`http://127.0.0.1:${d.port}/?token=${token}`)
    const earned = page.getByTestId('earned')
    await expect
      .poll(() => earned.innerText(), { timeout: 10_000 })
      .toBe('0.000005 tUSDC paid to you over 2 job(s) · 0.12 tUSDC waiting for settlement')
    expect(await page.getByTestId('price-input').inputValue()).toBe('0.36')
  })
})
