import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { Identity } from '@kiln/protocol'
import { CONFIG_DEFAULTS, initConfig, loadConfig, updateConfig } from '../src/config.ts'

const dir = () => mkdtempSync(join(tmpdir(), 'kiln-provider-config-'))
const required = () => ({
  marketplace: Identity.generate().address,
  mint: Identity.generate().address,
  bootstrap: ['/ip4/127.0.0.1/tcp/1/p2p/x'],
})

describe('provider config', () => {
  it('names each bad key and how to fix it', () => {
    const d = dir()
    const err = (() => {
      try {
        loadConfig(d, { bootstrap: ['/ip4/127.0.0.1/tcp/1'], mint: Identity.generate().address, pricePerHour: 0 })
      } catch (e) {
        return e
      }
    })()
    expect(err).toMatchObject({
      name: 'KilnError',
      kind: 'CONFIG_INVALID',
      context: { keys: ['marketplace', 'pricePerHour'] },
    })
    const msg = (err as Error).message
    expect(msg).toContain('marketplace: required, but not set')
    expect(msg).toContain('fix: pass --marketplace <address>')
    expect(msg).toMatch(/pricePerHour: .*\n\s+fix: pass --price <units>/)
  })

  it('says which file is broken JSON, and an unknown key is named too', () => {
    const d = dir()
    writeFileSync(join(d, 'config.json'), '{ nope')
    expect(() => loadConfig(d)).toThrow(/config\.json is not valid JSON; fix it, or run `kiln-provider init --force`/)
    writeFileSync(join(d, 'config.json'), JSON.stringify({ ...required(), colour: 'red' }))
    expect(() => loadConfig(d)).toThrow(/remove the unknown key/)
  })

  it("fills defaults, lets flags win over the file, and keeps the owner's other keys on update", () => {
    const d = dir()
    const r = required()
    initConfig(d, { ...r, region: 'eu' })
    const file = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8')) as Record<string, unknown>
    expect(file).toMatchObject({ ...CONFIG_DEFAULTS, ...r, region: 'eu' })
    expect(loadConfig(d, { pricePerHour: 500_000, region: undefined })).toMatchObject({
      pricePerHour: 500_000,
      region: 'eu',
      dashboardPort: 7780,
      autoResumeIdleSec: 300,
    })
    updateConfig(d, { pricePerHour: 420_000 })
    expect(loadConfig(d)).toMatchObject({ pricePerHour: 420_000, region: 'eu', marketplace: r.marketplace })
    // init again keeps what is there; --force starts over.
    initConfig(d, { region: 'us' })
    expect(loadConfig(d)).toMatchObject({ pricePerHour: 420_000, region: 'us' })
    expect(initConfig(d, {}, true).config).toEqual(CONFIG_DEFAULTS)
  })

  it('takes no jobs with network access unless the owner says so, and init writes that down', () => {
    const d = dir()
    initConfig(d, required())
    expect(JSON.parse(readFileSync(join(d, 'config.json'), 'utf8'))).toMatchObject({ acceptNetworkJobs: false })
    expect(loadConfig(d).acceptNetworkJobs).toBe(false)
    updateConfig(d, { acceptNetworkJobs: true })
    expect(loadConfig(d).acceptNetworkJobs).toBe(true)
    updateConfig(d, { acceptNetworkJobs: 'yes' })
    expect(() => loadConfig(d)).toThrow(/acceptNetworkJobs: .*\n\s+fix: set "acceptNetworkJobs" in config.json to true/)
  })
})
