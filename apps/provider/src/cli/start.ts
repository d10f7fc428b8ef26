import { join } from 'node:path'
import Dockerode from 'dockerode'
import pino from 'pino'
import { Connection } from '@solana/web3.js'
import { createMeshNode } from '@kiln/mesh'
import { loadOrCreateIdentity } from '@kiln/protocol'
import { loadConfig, updateConfig, type ConfigOverrides, type ProviderConfig } from '../config.ts'
import { removeEndpoint, writeEndpoint } from '../control-client.ts'
import { createProviderDaemon } from '../daemon.ts'
import { acquireDaemonLock } from '../daemon-lock.ts'
import { newToken, saveToken } from '../dashboard/auth.ts'
import { startDashboard } from '../dashboard/server.ts'
import { detectHardware } from '../hardware.ts'
import { createDockerRuntime, type DockerRuntime } from '../runtime/index.ts'
import { fundingHelp, isDevchainFor } from '../wallet.ts'
import { Exit, type Io } from './io.ts'

export interface StartOpts {
  data: string
  overrides: ConfigOverrides
  version: string
  /** Resolves when the daemon should stop (SIGINT/SIGTERM in the real command). */
  stopSignal: Promise<void>
  /** Wraps the Docker runtime (for test harnesses embedding the provider; the CLI never sets it). */
  wrapRuntime?: (runtime: DockerRuntime) => DockerRuntime
}

/**
 * `kiln-provider start`: takes the data dir's lock (one daemon per dir), checks the config (a
 * bad key ends here, named, with its fix), then detects the hardware, joins the mesh,
 * reconciles with Docker and the journal, and serves leases and the local dashboard until stopped.
 */
export async function start(o: StartOpts, io: Io): Promise<number> {
  // First: a second daemon on this data dir would share its identity and take over its dashboard token.
  const lock = acquireDaemonLock(o.data)
  try {
    return await serve(o, io, loadConfig(o.data, o.overrides))
  } finally {
    lock.release()
  }
}

async function serve(o: StartOpts, io: Io, config: ProviderConfig): Promise<number> {
  const log = pino({ base: { app: 'provider' } }, pino.destination(2))
  const identity = loadOrCreateIdentity(join(o.data, 'id.json'))
  const { hardware, gpus, note } = await detectHardware(o.data, config.nvidiaSmi)
  if (note) log.info({}, note)
  const mesh = createMeshNode({ identity, listen: config.listen, bootstrap: config.bootstrap })
  await mesh.start()
  const docker = createDockerRuntime({
    docker: new Dockerode({ socketPath: config.dockerSocket }),
    workDir: join(o.data, 'work'),
    logger: log,
    owner: identity.address,
  })
  const daemon = createProviderDaemon({
    identity,
    mesh,
    log,
    hardware,
    gpus,
    dataDir: o.data,
    version: o.version,
    runtime: o.wrapRuntime ? o.wrapRuntime(docker) : docker,
    connection: new Connection(config.rpcUrl, 'confirmed'),
    mint: config.mint,
    marketplace: config.marketplace,
    pricePerHour: config.pricePerHour,
    region: config.region,
    ...(config.operator ? { operator: config.operator } : {}),
    pollMs: config.pollSec * 1000,
    nvidiaSmi: config.nvidiaSmi,
    autoPause: { enabled: config.autoPause, idleMs: config.autoResumeIdleSec * 1000, ignore: config.autoPauseIgnore },
    persistPrice: (pricePerHour) => updateConfig(o.data, { pricePerHour }),
    acceptNetworkJobs: config.acceptNetworkJobs,
  })
  await daemon.start()
  const token = newToken()
  const tokenFile = saveToken(o.data, token)
  const dashboard = await startDashboard({ api: daemon, token, port: config.dashboardPort, log })
  writeEndpoint(o.data, { url: dashboard.url, pid: process.pid, startedAt: Date.now() })

  // The human lines first; the JSON line is what scripts and tests wait for.
  io.out(
    `kiln-provider ${identity.address}: ${hardware.gpus.length ? `${hardware.gpus.length} GPU(s): ${hardware.gpus.map((g) => g.model).join(', ')}` : 'no GPU, serving as a CPU-only provider'}`,
  )
  const unfunded = daemon.unfunded()
  if (unfunded) {
    const devchain = await isDevchainFor(config.rpcUrl, config.mint)
    io.out(`${unfunded}: it cannot post a job's bond, so it advertises itself unavailable`)
    for (const line of fundingHelp({
      address: identity.address,
      mint: config.mint,
      rpcUrl: config.rpcUrl,
      pricePerHour: config.pricePerHour,
      devchain,
    }))
      io.out(`  ${line}`)
  }
  io.out(`dashboard: ${dashboard.url}?token=${token}   (token saved in ${tokenFile})`)
  io.out(
    JSON.stringify({
      ready: 'provider',
      address: identity.address,
      mesh: mesh.multiaddrs(),
      hardware,
      pricePerHour: config.pricePerHour,
      dashboard: dashboard.url,
      tokenFile,
    }),
  )

  await o.stopSignal
  log.info({}, 'stopping')
  await daemon.stop()
  await dashboard.close()
  await mesh.stop().catch(() => {})
  removeEndpoint(o.data)
  return Exit.ok
}
