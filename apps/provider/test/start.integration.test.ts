import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Identity } from '@kiln/protocol'
import { createKilnClient } from '@kiln/sdk'
import { startNetwork, waitFor, type Network } from '../../../test/support/network.ts'
import { inventory, kilnProvider } from './support.ts'

/**
 * `kiln-provider start` as real processes on a real network (devchain, marketplace, mesh,
 * Docker): one daemon per data dir, and a wallet that cannot post bonds keeps it out of work.
 */
describe('kiln-provider start', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'kiln-start-it-'))
  const dir = (i: number) => join(dataDir, `provider-${i}`)
  let net: Network

  beforeAll(async () => {
    for (const i of [0, 1]) {
      mkdirSync(dir(i), { recursive: true })
      writeFileSync(join(dir(i), 'config.json'), JSON.stringify({ pollSec: 0.5, dashboardPort: 0 }))
    }
    net = await startNetwork({ providers: 0, dataDir, providerFunded: (i) => i !== 1 })
  }, 120_000)
  afterAll(async () => {
    await net?.stop()
  })

  it("refuses a second daemon on the same data dir, naming the first one's PID; a killed one's lock is taken over", async () => {
    const first = await net.startProvider(0)
    const pid = first.child.pid!
    const token = readFileSync(join(dir(0), 'dashboard.token'), 'utf8')

    const second = await kilnProvider([
      'start',
      '--data',
      dir(0),
      '--marketplace',
      net.arbiter,
      '--bootstrap',
      ...net.meshAddrs,
      '--rpc',
      net.rpcUrl,
      '--mint',
      net.mint,
    ])
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

  it('an unfunded provider advertises itself unavailable, says how to fund it, gets no match, and takes work once funded', async () => {
    const p = await net.startProvider(1)
    const address = String(p.info.address)
    const mine = async () => (await inventory(net.api)).find((e) => e.address === address)
    await waitFor(
      async () => (await mine())?.reason?.startsWith('wallet not funded') === true,
      20_000,
      'the unfunded advert',
    )
    expect(await mine()).toMatchObject({
      available: false,
      reason: "wallet not funded: 0 SOL (a bond's fee needs 0.00001), no stablecoin for bonds",
    })

    const client = Identity.generate()
    await net.fund(client.address, { lamports: 2_000_000_000, tokens: 5_000_000 })
    const kiln = createKilnClient({ url: net.api, identity: client })
    const { jobId } = await kiln.submit({
      image: 'kiln/matmul:1',
      command: ['16'],
      maxPricePerHour: 1_000_000,
      timeoutSec: 60,
    })
    await new Promise((r) => setTimeout(r, 3000))
    expect(await kiln.get(jobId)).toMatchObject({ state: 'queued', provider: null })

    // The owner runs the command `start` printed, as printed; no restart.
    const printed = readFileSync(join(dataDir, 'logs', 'provider-1.log'), 'utf8')
    expect(printed).toContain(`to take jobs, send ${address} at least 0.00001 SOL`)
    const command = /on this devchain: (curl .*)$/m.exec(printed)?.[1]
    expect(command).toContain(address)
    execFileSync('sh', ['-c', command!])
    await waitFor(async () => (await mine())?.available === true, 20_000, 'the funded advert')
    const job = await kiln.watch(jobId)
    expect(job).toMatchObject({ state: 'done', provider: address })
  }, 120_000)
})
