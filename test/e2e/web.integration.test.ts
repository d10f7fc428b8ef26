import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import type { Browser } from 'playwright-core'
import { launchChromium } from '../support/browser.ts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startNetwork, type Network } from '../support/network.ts'

const ROOT = resolve(import.meta.dirname, '..', '..')

/** The marketplace web app in real Chromium, against a live network. */
describe('marketplace web app', () => {
  let net: Network
  let browser: Browser
  beforeAll(async () => {
    if (!existsSync(join(ROOT, 'apps/marketplace/.next/BUILD_ID'))) throw new Error('web app not built: run npm run setup (or npm run build -w @kiln/marketplace)')
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
})
