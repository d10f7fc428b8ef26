import { execFileSync } from 'node:child_process'
import { createServer } from 'node:net'
import type Dockerode from 'dockerode'

/** Shared by the tests of network jobs: a server on the host, probes a job runs against it, and cleanup. */

/** A TCP server on every host address that greets whoever connects and counts them. */
export async function listenOnHost(): Promise<{ port: number; connections: () => number; close: () => Promise<void> }> {
  let connections = 0
  const server = createServer((sock) => {
    connections++
    sock.end('hello-from-host\n')
  })
  await new Promise<void>((ok) => server.listen(0, '0.0.0.0', ok))
  return {
    port: (server.address() as { port: number }).port,
    connections: () => connections,
    close: () => new Promise<void>((ok) => server.close(() => ok())),
  }
}

/**
 * Every IPv4 address of this host, each Docker bridge's gateway among them. From `ip`, because
 * Node lists only interfaces that are up, and a bridge with no container attached is down.
 */
export function hostAddresses(): string[] {
  return execFileSync('ip', ['-4', '-o', 'addr', 'show'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => /inet (\S+)\//.exec(l)?.[1])
    .filter((a): a is string => a !== undefined)
}

/** A shell script that tries each target on `port` and prints `reach <target>=<nc's exit code>`. */
export function probeScript(targets: readonly string[], port: number): string {
  return targets.map((t) => `nc -w 2 ${t} ${port} </dev/null; echo "reach ${t}=$?"`).join('\n')
}

/** The targets a probe's log says it reached. Not anchored to line starts: a raw container log has frame headers. */
export function reachedIn(log: string): string[] {
  return [...log.matchAll(/reach (\S+)=0(?!\d)/g)].map((m) => m[1]!)
}

/**
 * Takes down what a provider's egress setup installed (apps/provider/src/runtime/network.ts):
 * the Docker network, the jumps into Kiln's chains and the chains, so that a test leaves the
 * host's firewall as it found it.
 */
export async function removeEgress(docker: Dockerode, network: string, bridge: string): Promise<void> {
  await docker
    .getNetwork(network)
    .remove()
    .catch(() => {})
  const ipt = (...args: string[]) => {
    try {
      execFileSync('iptables', ['-w', ...args], { stdio: 'pipe' })
    } catch {
      /* already gone */
    }
  }
  for (const [chain, hook] of [
    [`KILN-FWD-${bridge}`, 'DOCKER-USER'],
    [`KILN-IN-${bridge}`, 'INPUT'],
  ] as const) {
    ipt('-D', hook, '-i', bridge, '-j', chain)
    ipt('-F', chain)
    ipt('-X', chain)
  }
}
