import { execFileSync } from 'node:child_process'
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import Dockerode from 'dockerode'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { JobSpec, randomHex, type JobSpecInput } from '@kiln/protocol'
import { createDockerRuntime, type DockerRuntime, type EgressInit } from '../src/runtime/index.ts'
import {
  hostAddresses as hostTargets,
  listenOnHost,
  probeScript,
  reachedIn as reached,
  removeEgress,
} from '../../../test/support/egress.ts'

/**
 * Network jobs on a real engine with real iptables rules (so this runs as root, as a provider
 * that takes network jobs must). A TCP server listens on every host address; a container must
 * not reach it, while one on Docker's default bridge (where network jobs used to go) does.
 */
const ROOT = resolve(import.meta.dirname, '../../..')
const docker = new Dockerode({ socketPath: '/var/run/docker.sock' })
// Names of our own, so that this file never touches the egress network of a provider on this engine.
const tag = randomHex(3)
const egress: EgressInit = { network: `kiln-egress-test-${tag}`, bridge: `kt-${tag}` }
const owner = `network-test-${tag}`
let workDir: string
let rt: DockerRuntime
let server: Awaited<ReturnType<typeof listenOnHost>>

const spec = (over: Partial<JobSpecInput>): JobSpec =>
  JobSpec.parse({ image: 'kiln/busybox:1', maxPricePerHour: 1, timeoutSec: 30, ...over })
const run = (script: string, network: boolean, runtime = rt) =>
  runtime.run({ jobId: `job_${randomHex(8)}`, spec: spec({ command: ['sh', '-c', script], network }) })

const probe = (targets: string[]) => probeScript(targets, server.port)
// busybox nslookup prints this only when no resolver answered at all (NXDOMAIN is an answer).
const dns =
  'nslookup kiln-probe.invalid >/tmp/ns 2>&1; grep -qE "timed out|no servers" /tmp/ns && echo dns=none || echo dns=answered'

/** What a job got before: a plain container on Docker's default bridge, outside the sandbox. */
async function onDefaultBridge(script: string): Promise<string> {
  const c = await docker.createContainer({
    Image: 'kiln/busybox:1',
    Cmd: ['sh', '-c', script],
    HostConfig: { NetworkMode: 'bridge' },
  })
  try {
    await c.start()
    await c.wait()
    return (await c.logs({ stdout: true, stderr: true })).toString('utf8')
  } finally {
    await c.remove({ force: true })
  }
}

beforeAll(async () => {
  execFileSync('bash', [join(ROOT, 'scripts/build-images.sh'), 'busybox'], { stdio: 'pipe' })
  workDir = await mkdtemp(join(tmpdir(), 'kiln-network-it-'))
  rt = createDockerRuntime({ docker, workDir, owner, stopGraceSec: 1, egress })
  server = await listenOnHost()
}, 60_000)

afterAll(async () => {
  await server?.close()
  await removeEgress(docker, egress.network!, egress.bridge!)
  if (workDir) await rm(workDir, { recursive: true, force: true })
})

describe('network jobs', () => {
  it("a container on Docker's default bridge, where network jobs used to run, reaches the host (the control)", async () => {
    const log = await onDefaultBridge(probe(hostTargets()))
    expect(reached(log).length).toBeGreaterThan(0)
    expect(log).toContain('hello-from-host')
  }, 30_000)

  it("a network job has a network, but reaches none of the host's addresses and leaves the server untouched", async () => {
    // Made before the targets are listed, so that its own gateway (the host, seen from the job) is among them.
    const ready = await rt.egress()
    expect(ready).toMatchObject({ ok: true, network: egress.network })
    const gateway = ((await docker.getNetwork(egress.network!).inspect()) as Dockerode.NetworkInspectInfo).IPAM
      ?.Config?.[0]?.Gateway
    expect(hostTargets()).toContain(gateway)
    const before = server.connections()
    const r = await run(
      `grep -q '^eth0\t00000000' /proc/net/route && echo has-default-route\n${probe(hostTargets())}`,
      true,
    )
    expect(r.status).toBe('succeeded')
    expect(r.log).toContain('has-default-route')
    expect(r.log.match(/reach /g)?.length).toBe(hostTargets().length)
    expect(reached(r.log)).toEqual([])
    expect(r.log).not.toContain('hello-from-host')
    expect(server.connections()).toBe(before)
  }, 60_000)

  it("a network job resolves names whenever a default-bridge container can (DNS to the host's resolver stays open)", async () => {
    const control = await onDefaultBridge(dns)
    const r = await run(dns, true)
    expect(r.log.match(/dns=\w+/)?.[0]).toBe(control.match(/dns=\w+/)?.[0])
  }, 30_000)

  it('a job without network still has none: no interface but loopback, nothing reachable', async () => {
    const r = await run(
      `echo "ifaces=$(ls /sys/class/net | tr '\\n' ' ')"\n${probe([...hostTargets(), '1.1.1.1'])}`,
      false,
    )
    expect(r.log).toMatch(/^ifaces=lo $/m)
    expect(reached(r.log)).toEqual([])
    expect(r.log).not.toContain('hello-from-host')
  }, 60_000)

  it('sets the rules up once however often it is asked, and puts them back when they are gone', async () => {
    const count = () =>
      execFileSync('iptables', ['-w', '-S'], { encoding: 'utf8' })
        .split('\n')
        .filter((l) => l.includes(`-i ${egress.bridge} -j KILN-`)).length
    expect(await rt.egress()).toMatchObject({ ok: true, network: egress.network, bridge: egress.bridge })
    expect(await Promise.all([rt.egress(), rt.egress()])).toMatchObject([{ ok: true }, { ok: true }])
    expect(count()).toBe(2)
    // A firewall reload (firewalld, ufw) may flush what we installed: the next network job puts it back.
    execFileSync('iptables', ['-w', '-D', 'DOCKER-USER', '-i', egress.bridge!, '-j', `KILN-FWD-${egress.bridge}`])
    const r = await run(probe(hostTargets()), true)
    expect(reached(r.log)).toEqual([])
    expect(count()).toBe(2)
  }, 60_000)

  it('refuses a network job, saying why, when iptables is missing or it is not root', async () => {
    const missing = createDockerRuntime({
      docker,
      workDir,
      owner,
      egress: { ...egress, iptables: '/nonexistent/iptables' },
    })
    const r = await run('echo ran', true, missing)
    expect(r).toMatchObject({ status: 'failed', startedAt: null, error: { kind: 'NETWORK_UNAVAILABLE' } })
    expect(r.error?.message).toMatch(
      /cannot isolate it from the host and LAN: \/nonexistent\/iptables is not installed \(Debian\/Ubuntu: apt-get install iptables\)/,
    )
    expect(r.log).not.toContain('ran')
    // The real iptables, run as nobody.
    const asNobody = join(workDir, 'iptables-nobody')
    for (const [file, bin] of [
      [asNobody, 'iptables'],
      [`${asNobody}-restore`, 'iptables-restore'],
    ]) {
      await writeFile(file!, `#!/bin/sh\nexec setpriv --reuid=65534 --regid=65534 --clear-groups ${bin} "$@"\n`)
      await chmod(file!, 0o755)
    }
    const unprivileged = createDockerRuntime({ docker, workDir, owner, egress: { ...egress, iptables: asNobody } })
    expect(await unprivileged.egress()).toEqual({
      ok: false,
      reason: expect.stringMatching(/needs root \(or CAP_NET_ADMIN\) to install the firewall rules/),
    })
  }, 30_000)
})
