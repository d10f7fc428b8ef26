import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { networkInterfaces } from 'node:os'
import type Dockerode from 'dockerode'
import { dockerMessage } from './errors.ts'
import { LABEL_MANAGED } from './sandbox.ts'

/**
 * Where jobs with `network: true` run: a bridge network of their own that reaches the internet
 * and nothing else. Docker's default bridge would let a stranger's container reach the host's
 * services and the owner's LAN (router, NAS, cloud metadata), so the provider makes its own
 * bridge with inter-container traffic off, and iptables rules on this host that drop whatever
 * comes from that bridge to the host itself (INPUT) or to private, shared, link-local and
 * loopback ranges and the host's own addresses (DOCKER-USER, which Docker consults first).
 */

export const EGRESS_NETWORK = 'kiln-egress'
/** The bridge's interface name, which the rules match on (Linux allows 15 characters). */
export const EGRESS_BRIDGE = 'kiln-egress0'
/** The owner's LAN, carrier-grade NAT, link-local (cloud metadata at 169.254.169.254) and loopback. */
export const BLOCKED_RANGES = [
  '10.0.0.0/8',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '169.254.0.0/16',
  '100.64.0.0/10',
  '127.0.0.0/8',
] as const

export interface EgressInit {
  /** Docker network name; default EGRESS_NETWORK. */
  network?: string
  /** Its bridge interface; default EGRESS_BRIDGE. */
  bridge?: string
  /** The iptables binary (iptables-restore is looked up next to it by name). Default 'iptables'. */
  iptables?: string
  /** This host's IPv4 addresses; default: every interface's. */
  hostAddresses?: () => string[]
  /** The DNS servers Docker's resolver forwards to; default: read from /etc/resolv.conf. */
  nameservers?: () => string[]
}

export type EgressStatus = { ok: true; network: string; bridge: string; subnet: string } | { ok: false; reason: string }

export interface EgressRules {
  /** iptables-restore input (with --noflush): declaring our chains empties them, so one call replaces their rules atomically. */
  restore: string
  /** Rules that send the bridge's traffic into our chains, each `chain ...match`; checked with -C, inserted with -I. */
  jumps: string[][]
}

/**
 * The rules, as pure data. Docker's embedded DNS forwards a container's queries from inside the
 * container's namespace, so the resolver it uses (often the home router) stays reachable on port
 * 53 only; without that a network job could not resolve a name.
 */
export function egressRules(
  bridge: string,
  hostAddresses: readonly string[],
  nameservers: readonly string[],
): EgressRules {
  const fwd = `KILN-FWD-${bridge}`
  const inp = `KILN-IN-${bridge}`
  const dns = (chain: string) =>
    nameservers.flatMap((ns) =>
      ['udp', 'tcp'].map((p) => `-A ${chain} -d ${ns}/32 -p ${p} -m ${p} --dport 53 -j RETURN`),
    )
  const lines = [
    '*filter',
    `:${fwd} - [0:0]`,
    `:${inp} - [0:0]`,
    ...dns(fwd),
    ...[...BLOCKED_RANGES, ...hostAddresses.map((a) => `${a}/32`)].map((d) => `-A ${fwd} -d ${d} -j DROP`),
    ...dns(inp),
    `-A ${inp} -j DROP`,
    'COMMIT',
    '',
  ]
  return {
    restore: lines.join('\n'),
    jumps: [
      ['DOCKER-USER', '-i', bridge, '-j', fwd],
      ['INPUT', '-i', bridge, '-j', inp],
    ],
  }
}

const isV4 = (a: string) => /^\d{1,3}(\.\d{1,3}){3}$/.test(a)

function hostAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) =>
    (list ?? []).filter((i) => i.family === 'IPv4' && !i.internal).map((i) => i.address),
  )
}

/** Docker skips loopback resolvers (systemd-resolved's 127.0.0.53 among them) and uses the real ones behind it. */
function hostNameservers(): string[] {
  const read = (path: string) => {
    try {
      return readFileSync(path, 'utf8')
        .split('\n')
        .map((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1])
        .filter((a): a is string => a !== undefined && isV4(a))
    } catch {
      return []
    }
  }
  const listed = read('/etc/resolv.conf').filter((a) => !a.startsWith('127.'))
  return listed.length ? listed : read('/run/systemd/resolve/resolv.conf').filter((a) => !a.startsWith('127.'))
}

interface Exec {
  code: number
  stderr: string
  missing: boolean
}

function exec(bin: string, args: string[], input?: string): Promise<Exec> {
  return new Promise((resolve) => {
    const child = execFile(bin, args, { timeout: 15_000 }, (err, _stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: unknown }) | null
      resolve({
        code: e ? (typeof e.code === 'number' ? e.code : 1) : 0,
        stderr: String(stderr).trim() || (e?.message ?? ''),
        missing: e?.code === 'ENOENT',
      })
    })
    if (input !== undefined) child.stdin?.end(input)
  })
}

const denied = (r: Exec) => /permission denied|must be root|operation not permitted/i.test(r.stderr)

/** Why an iptables call failed, in words that say what to do. */
function iptablesProblem(bin: string, r: Exec): string {
  if (r.missing) return `${bin} is not installed (Debian/Ubuntu: apt-get install iptables)`
  if (denied(r))
    return `${bin} needs root (or CAP_NET_ADMIN) to install the firewall rules; run the provider as root, or leave acceptNetworkJobs off`
  return `${bin} failed: ${r.stderr.split('\n')[0]}`
}

export interface Egress {
  /** Creates the network and installs the rules if missing (idempotent); never throws. */
  ensure(): Promise<EgressStatus>
}

export function createEgress(docker: Dockerode, init: EgressInit = {}): Egress {
  const name = init.network ?? EGRESS_NETWORK
  const bridge = init.bridge ?? EGRESS_BRIDGE
  const iptables = init.iptables ?? 'iptables'
  const options = { 'com.docker.network.bridge.name': bridge, 'com.docker.network.bridge.enable_icc': 'false' }

  async function network(): Promise<{ subnet: string } | { reason: string }> {
    let info: Dockerode.NetworkInspectInfo
    try {
      info = (await docker.getNetwork(name).inspect()) as Dockerode.NetworkInspectInfo
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode !== 404)
        return { reason: `cannot inspect Docker network ${name}: ${dockerMessage(e)}` }
      try {
        await docker.createNetwork({
          Name: name,
          Driver: 'bridge',
          CheckDuplicate: true,
          Options: options,
          Labels: { [LABEL_MANAGED]: '1' },
        })
      } catch (c) {
        // 409: another provider on this engine made it just now, which is as good.
        if ((c as { statusCode?: number }).statusCode !== 409)
          return { reason: `cannot create Docker network ${name}: ${dockerMessage(c)}` }
      }
      return network()
    }
    const opts = info.Options ?? {}
    if (
      info.Driver !== 'bridge' ||
      opts['com.docker.network.bridge.name'] !== bridge ||
      opts['com.docker.network.bridge.enable_icc'] !== 'false'
    ) {
      return {
        reason: `a Docker network named ${name} exists but is not the one Kiln makes (bridge ${bridge}, inter-container traffic off); remove it (docker network rm ${name}) and the provider makes its own`,
      }
    }
    const subnet = info.IPAM?.Config?.find((c) => c.Subnet && isV4(c.Subnet.split('/')[0] ?? ''))?.Subnet
    return subnet ? { subnet } : { reason: `Docker network ${name} has no IPv4 subnet` }
  }

  async function firewall(): Promise<string | undefined> {
    // Docker sends forwarded traffic through DOCKER-USER first; without that jump our drops would never be consulted.
    const hook = await exec(iptables, ['-w', '-C', 'FORWARD', '-j', 'DOCKER-USER'])
    if (hook.missing || denied(hook)) return iptablesProblem(iptables, hook)
    if (hook.code !== 0) {
      return `iptables has no FORWARD jump to Docker's DOCKER-USER chain (${hook.stderr.split('\n')[0]}): is Docker's iptables support on, and does ${iptables} use the same backend (nft or legacy) as Docker?`
    }
    const rules = egressRules(bridge, (init.hostAddresses ?? hostAddresses)(), (init.nameservers ?? hostNameservers)())
    const restore = await exec(`${iptables}-restore`, ['-w', '--noflush'], rules.restore)
    if (restore.code !== 0) return iptablesProblem(`${iptables}-restore`, restore)
    for (const [chain, ...rule] of rules.jumps) {
      if ((await exec(iptables, ['-w', '-C', chain!, ...rule])).code === 0) continue
      const added = await exec(iptables, ['-w', '-I', chain!, '1', ...rule])
      if (added.code !== 0) return iptablesProblem(iptables, added)
    }
    return undefined
  }

  // One setup at a time: two at once could both find a jump missing and insert it twice.
  let queue: Promise<unknown> = Promise.resolve()
  const ensure = async (): Promise<EgressStatus> => {
    if (process.platform !== 'linux')
      return {
        ok: false,
        reason: `network jobs need Linux: their isolation is iptables rules on this host, and this is ${process.platform}`,
      }
    const net = await network()
    if ('reason' in net) return { ok: false, reason: net.reason }
    const problem = await firewall()
    return problem ? { ok: false, reason: problem } : { ok: true, network: name, bridge, subnet: net.subnet }
  }
  return {
    ensure() {
      const next = queue.then(ensure, ensure)
      queue = next
      return next
    },
  }
}
