import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Dockerode from 'dockerode'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createKilnClient } from '@kiln/sdk'
import { dashboardClient } from '../../apps/provider/test/support.ts'
import type { StatusView } from '../../apps/provider/src/control-views.ts'
import { EGRESS_BRIDGE, EGRESS_NETWORK } from '../../apps/provider/src/runtime/index.ts'
import { hostAddresses, listenOnHost, probeScript, reachedIn, removeEgress } from '../support/egress.ts'
import { waitFor } from '../support/network.ts'
import { useNetwork } from '../support/use-network.ts'

/**
 * Jobs that ask for network access, through the whole network: a provider as installed
 * (default config) advertises that it takes none and gets none, the job waits and says why;
 * a provider whose owner turned them on takes it, and its container reaches the internet side
 * only, not the host it runs on. Provider 1 installs real iptables rules, so this runs as root.
 */
describe('jobs with network access', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'kiln-network-jobs-'))
  const p1Data = join(dataDir, 'provider-1')
  let host: Awaited<ReturnType<typeof listenOnHost>>
  beforeAll(async () => {
    mkdirSync(p1Data, { recursive: true })
    writeFileSync(join(p1Data, 'config.json'), JSON.stringify({ acceptNetworkJobs: true, dashboardPort: 0 }))
    host = await listenOnHost()
  })
  // Only provider 0 (default config) at first; provider 1 joins during the test.
  const fx = useNetwork({ providers: 1, dataDir })
  afterAll(async () => {
    await host?.close()
    await removeEgress(new Dockerode({ socketPath: '/var/run/docker.sock' }), EGRESS_NETWORK, EGRESS_BRIDGE)
  })

  it('a default provider takes none and the job waits saying why; one that takes them runs it, and it cannot reach the host', async () => {
    const kiln = createKilnClient({ url: fx.net.api, identity: fx.client })
    const p0 = String(fx.net.providers[0]!.info.address)
    expect(await kiln.providers()).toMatchObject([{ address: p0, available: true, network: false }])
    expect((await dashboardClient(join(dataDir, 'provider-0')).get<StatusView>('/api/status')).network).toEqual({
      accepted: false,
      problem: 'acceptNetworkJobs is off in its config',
    })

    const job = {
      image: 'kiln/busybox:1',
      resources: { cpu: 0.5, memoryMb: 64 },
      maxPricePerHour: 1_000_000,
      timeoutSec: 60,
      network: true,
    }
    const { jobId: first } = await kiln.submit({ ...job, command: ['sh', '-c', 'echo networked'] })
    await waitFor(
      async () => /1 network \(they take no jobs with network access\)/.test((await kiln.get(first)).waiting ?? ''),
      15_000,
      'the network job to wait',
    )
    expect((await kiln.get(first)).state).toBe('queued')

    const p1 = String((await fx.net.startProvider(1)).info.address)
    await waitFor(
      async () => (await kiln.providers()).some((p) => p.address === p1 && p.network),
      20_000,
      'provider 1 advertising network jobs',
    )
    const placed = await kiln.watch(first, { pollMs: 500 })
    expect(placed).toMatchObject({ state: 'done', provider: p1 })

    // Run on provider 1: the host is every address `ip` lists, the egress bridge's gateway among them.
    const targets = hostAddresses()
    const before = host.connections()
    const logs: string[] = []
    const { jobId: probing } = await kiln.submit({ ...job, command: ['sh', '-c', probeScript(targets, host.port)] })
    const probed = await kiln.watch(probing, {
      pollMs: 500,
      onLog: (l) => {
        logs.push(l.text)
      },
    })
    expect(probed).toMatchObject({ state: 'done', provider: p1 })
    const log = logs.join('')
    expect(log.match(/reach /g)).toHaveLength(targets.length)
    expect(reachedIn(log)).toEqual([])
    expect(log).not.toContain('hello-from-host')
    expect(host.connections()).toBe(before)
  }, 180_000)
})
