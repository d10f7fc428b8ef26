import type { Logger } from './log.ts'
import type { DockerRuntime } from './runtime/index.ts'

export const NETWORK_JOBS_OFF = 'acceptNetworkJobs is off in its config'

/**
 * Whether this provider takes jobs that ask for network access: only when its owner turned
 * that on and the egress network with its firewall is in place; until then it says why not.
 */
export function createNetworkJobs(opts: { accept: boolean; runtime: Pick<DockerRuntime, 'egress'>; log: Logger }) {
  let ready = false
  let problem = opts.accept ? 'its egress network is not set up yet' : NETWORK_JOBS_OFF
  return {
    /** Sets the egress network up unless done already; call while Docker answers. Retries each time until it works. */
    async check(): Promise<void> {
      if (!opts.accept || ready) return
      const e = await opts.runtime.egress()
      if (e.ok) {
        ready = true
        opts.log.info(
          { network: e.network, bridge: e.bridge, subnet: e.subnet },
          'taking jobs with network access: internet only, not this host or its LAN',
        )
      } else if (e.reason !== problem) {
        problem = e.reason
        opts.log.warn({ reason: e.reason }, 'not taking jobs with network access')
      }
    },
    taken: () => ready,
    /** Why such jobs are refused; undefined once they are taken. */
    problem: (): string | undefined => (ready ? undefined : problem),
  }
}
