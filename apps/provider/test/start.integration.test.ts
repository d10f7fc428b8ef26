import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startNetwork, type Network } from '../../../test/support/network.ts'
import { kilnProvider } from './support.ts'

/**
 * `kiln-provider start` as real processes on a real network (devchain, marketplace, mesh,
 * Docker): one daemon per data dir.
 */
describe('kiln-provider start', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'kiln-start-it-'))
  const dir = (i: number) => join(dataDir, `provider-${i}`)
  let net: Network

  beforeAll(async () => {
    mkdirSync(dir(0), { recursive: true })
    writeFileSync(join(dir(0), 'config.json'), JSON.stringify({ pollSec: 0.5, dashboardPort: 0 }))
    net = await startNetwork({ providers: 0, dataDir })
  }, 120_000)
  afterAll(async () => {
    await net?.stop()
  })

  it('refuses a second daemon on the same data dir, naming the first one\'s PID; a killed one\'s lock is taken over', async () => {
    const first = await net.startProvider(0)
    const pid = first.child.pid!
    const token = readFileSync(join(dir(0), 'dashboard.token'), 'utf8')

    const second = await kilnProvider(['start', '--data', dir(0), '--marketplace', net.arbiter, '--bootstrap', ...net.meshAddrs, '--rpc', net.rpcUrl, '--mint', net.mint])
    expect(second.code).toBe(4)
    expect(second.stderr.trim().split('\n')).toHaveLength(1)
    expect(second.stderr).toContain(`KILN_5008 a kiln-provider daemon (pid ${pid}) is already running for ${dir(0)}`)
    expect(second.stdout).toBe('')
    // The first one still answers its owner, with the token it printed.
    expect(readFileSync(join(dir(0), 'dashboard.token'), 'utf8')).toBe(token)
    const status = await kilnProvider(['status', '--data', dir(0)])
    expect(status.code).toBe(0)
    expect(status.stdout).toContain(`provider  ${first.info.address}`)
    expect((await kilnProvider(['pause', '--data', dir(0)])).code).toBe(0)
    expect((await kilnProvider(['resume', '--data', dir(0)])).code).toBe(0)

    const exited = new Promise((r) => first.child.once('exit', r))
    first.child.kill('SIGKILL')
    await exited
    expect(readFileSync(join(dir(0), 'daemon.lock'), 'utf8').trim()).toBe(String(pid)) // left behind
    const next = await net.startProvider(0)
    expect(readFileSync(join(dir(0), 'daemon.lock'), 'utf8').trim()).toBe(String(next.child.pid))
    expect((await kilnProvider(['status', '--data', dir(0)])).code).toBe(0)
    await next.stop()
    expect(existsSync(join(dir(0), 'daemon.lock'))).toBe(false)
  }, 90_000)
})
