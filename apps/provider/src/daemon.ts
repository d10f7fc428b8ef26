import { join } from 'node:path'
import type { Connection } from '@solana/web3.js'
import { checkLock, tokenBalance } from '@kiln/escrow'
import type { MeshNode } from '@kiln/mesh'
import {
  KilnError,
  NonceCache,
  tokenUnitFor,
  type Address,
  type CapacityAdvert,
  type Hardware,
  type Identity,
  type Lease,
  MAX_ADVERT_CACHED_INPUTS,
} from '@kiln/protocol'
import { acceptLease, type LockChecker } from './admission.ts'
import { createAdvertiser } from './advertiser.ts'
import { createAvailability } from './availability.ts'
import { Bonds } from './bonds.ts'
import { earningsSummary, earningsView, jobView, type StatusView } from './control-views.ts'
import type { ControlApi } from './dashboard/server.ts'
import { createGpuWatch } from './gpu-watch.ts'
import type { GpuStatus } from './hardware.ts'
import { JobJournal } from './journal.ts'
import type { Logger } from './log.ts'
import { LogRing } from './log-ring.ts'
import { handleProtocols } from './mesh-handlers.ts'
import { createNetworkJobs } from './network-jobs.ts'
import { recoverJobs } from './recovery.ts'
import type { DockerRuntime } from './runtime/index.ts'
import { InputCache } from './inputs/cache.ts'
import { createSlot } from './slot.ts'
import { createWallet } from './wallet.ts'

export type { Logger } from './log.ts'

export interface ProviderInit {
  identity: Identity
  mesh: MeshNode
  runtime: DockerRuntime
  connection: Connection
  mint: Address
  /** The marketplace (arbiter) whose leases this provider accepts. */
  marketplace: Address
  hardware: Hardware
  /** GPUs as detected at start, with utilisation and temperature. */
  gpus?: GpuStatus[]
  pricePerHour: number
  region: string
  /** Who runs this machine (advertised; the marketplace keeps one operator's providers from checking each other). */
  operator?: Address
  dataDir: string
  version: string
  log: Logger
  advertIntervalMs?: number
  /** How often the Docker engine and the GPUs' processes are checked. Default 5 s. */
  pollMs?: number
  /** nvidia-smi to poll while there are GPUs. Default 'nvidia-smi'. */
  nvidiaSmi?: string
  autoPause?: { enabled: boolean; idleMs: number; ignore?: string[] }
  /** Reads a lease's vault on chain; default checkLock on `connection`. */
  checkLock?: LockChecker
  /** Called when the owner sets a new price, to keep it across restarts. */
  persistPrice?: (pricePerHour: number) => void
  /** Take jobs that ask for network access (on the runtime's egress network). Default: no. */
  acceptNetworkJobs?: boolean
  /** Bytes the input cache (`<dataDir>/inputs`) may hold before it evicts the least recently used. Default 20 GiB. */
  inputCacheBytes?: number
}

/** What `kiln-provider start` and the dashboard use of a running provider. */
export interface ProviderDaemon extends ControlApi {
  /** Checks the engine (and recovers crashed runs), serves the mesh protocols, starts advertising. */
  start(): Promise<void>
  /** Stops advertising and checking; stops the running job (it ends failed and is journaled) and waits up to `waitMs` for that. */
  stop(waitMs?: number): Promise<void>
  /** Why the wallet cannot post a bond (the advert says unavailable meanwhile), if it cannot. */
  unfunded(): string | undefined
  /** The advert as it would be published now. */
  advert(): CapacityAdvert
  readonly journal: JobJournal
}

const STOP_REASON = 'paused by its owner (paid pro rata for the time used)'

/**
 * The provider: advertises what it has and whether it takes work, accepts leases only from
 * its marketplace and only when the escrow is funded on chain (it checks for itself), runs
 * them in the sandbox, and co-signs settlements that pay it what its own receipt earned.
 * The owner can pause it; it pauses itself while someone else's program uses a GPU.
 * This is the wiring; each part owns its state.
 */
export function createProviderDaemon(init: ProviderInit): ProviderDaemon {
  const { identity, mesh, runtime, log, hardware } = init
  const journal = new JobJournal(init.dataDir)
  const nonces = new NonceCache()
  const ring = new LogRing()
  const slot = createSlot()
  const bonds = new Bonds({ connection: init.connection, identity, mint: init.mint, log })
  const wallet = createWallet({ connection: init.connection, mint: init.mint, address: identity.address, log })
  const networkJobs = createNetworkJobs({ accept: init.acceptNetworkJobs === true, runtime, log })
  const gpu = createGpuWatch({
    hardware,
    ...(init.gpus ? { gpus: init.gpus } : {}),
    nvidiaSmi: init.nvidiaSmi ?? 'nvidia-smi',
    runtime,
    log,
    autoPause: {
      enabled: init.autoPause?.enabled ?? true,
      idleMs: init.autoPause?.idleMs ?? 300_000,
      ignore: init.autoPause?.ignore ?? [],
    },
  })
  const avail = createAvailability({
    autoPausedBy: gpu.pausedBy,
    unfunded: wallet.problem,
    busy: () => slot.jobId() !== undefined,
  })
  let price = init.pricePerHour
  const advertiser = createAdvertiser({
    mesh,
    log,
    hardware,
    region: init.region,
    version: init.version,
    ...(init.operator ? { operator: init.operator } : {}),
    ...(init.advertIntervalMs !== undefined ? { intervalMs: init.advertIntervalMs } : {}),
    availability: avail.now,
    price: () => price,
    networkJobs: networkJobs.taken,
    maxBond: () => wallet.funds()?.tokens,
    cachedInputs: () => inputCache?.list(MAX_ADVERT_CACHED_INPUTS) ?? [],
  })
  let inputCache: InputCache | undefined
  let pollTimer: NodeJS.Timeout | undefined
  let ticking: Promise<void> | undefined

  /** Checks the engine, the wallet and the GPUs; republishes at once when what the advert says changed. */
  async function tick(): Promise<void> {
    const before = JSON.stringify([avail.now(), networkJobs.taken(), wallet.funds()?.tokens])
    const ping = await runtime.ping()
    if (ping.ok && !avail.recovered()) {
      try {
        const r = await recoverJobs({
          journal,
          runtime,
          provider: identity.address,
          resultsDir: join(init.dataDir, 'results'),
          log,
        })
        if (r.finished.length + r.failed.length + r.removed.length) log.info(r, 'crash recovery done')
        avail.markRecovered()
      } catch (e) {
        log.warn({ err: (e as Error).message }, 'crash recovery failed; will retry')
      }
    }
    if (ping.ok !== (avail.dockerProblem() === undefined))
      log[ping.ok ? 'info' : 'warn'](
        ping.ok ? { version: ping.version } : { reason: ping.reason },
        ping.ok ? 'Docker engine reachable' : 'Docker engine unavailable',
      )
    avail.setDocker(ping.ok ? undefined : ping.reason)
    if (ping.ok) await networkJobs.check()
    await wallet.check()
    await gpu.sample()
    if (JSON.stringify([avail.now(), networkJobs.taken(), wallet.funds()?.tokens]) !== before)
      await advertiser.publish()
  }
  const tickOnce = () =>
    (ticking ??= tick().finally(() => {
      ticking = undefined
    }))

  const accept = async (raw: unknown): Promise<Lease> => {
    const lease = await acceptLease(raw, {
      identity,
      marketplace: init.marketplace,
      nonces,
      checkLock: init.checkLock ?? ((ref) => checkLock(init.connection, ref)),
      state: (l) => {
        const a = avail.now()
        const holder = slot.jobId()
        const dockerProblem = avail.dockerProblem()
        const noNetworkJobs = networkJobs.problem()
        return {
          self: identity.address,
          marketplace: init.marketplace,
          mint: init.mint,
          pricePerHour: price,
          hardware,
          now: Date.now(),
          ...(a.state !== 'running' && a.reason ? { pausedReason: a.reason } : {}),
          ...(holder !== undefined ? { runningJobId: holder } : {}),
          ...(dockerProblem ? { dockerProblem } : {}),
          recovering: !avail.recovered(),
          ...(noNetworkJobs ? { noNetworkJobs } : {}),
          ...(journal.get(l.jobId) ? { acceptedVault: journal.get(l.jobId)?.lease.vault } : {}),
        }
      },
      claim: (l) => slot.lease(l.jobId),
    })
    await bonds.start(lease).catch((e: unknown) => {
      slot.release(lease.jobId)
      wallet.stale()
      throw e
    })
    return lease
  }

  function status(): StatusView {
    const a = avail.now()
    const job = slot.running()
    return {
      address: identity.address,
      mint: init.mint,
      token: tokenUnitFor(init.mint),
      version: init.version,
      region: init.region,
      pricePerHour: price,
      state: a.state,
      available: a.available,
      reason: a.reason ?? null,
      pausedAt: avail.pausedAt() ?? null,
      autoPause: gpu.autoPauseView(),
      docker: { ok: avail.dockerProblem() === undefined, problem: avail.dockerProblem() ?? null },
      recovered: avail.recovered(),
      network: { accepted: networkJobs.taken(), problem: networkJobs.problem() ?? null },
      hardware: {
        cpuCores: hardware.cpuCores,
        memoryMb: hardware.memoryMb,
        diskMb: hardware.diskMb,
        cpuOnly: hardware.gpus.length === 0,
        ...gpu.view(),
      },
      job: job
        ? {
            jobId: job.lease.jobId,
            image: job.lease.spec.image,
            acceptedAt: job.acceptedAt,
            startedAt: job.startedAt,
            pricePerHour: job.lease.pricePerHour,
            lockAmount: job.lease.lockAmount,
            timeoutSec: job.lease.spec.timeoutSec,
            stopping: job.stopping,
          }
        : null,
      advert: advertiser.view(),
      peers: mesh.peers().length,
      earnings: earningsSummary(journal.all()),
    }
  }

  return {
    journal,
    advert: advertiser.next,
    status,
    unfunded: () => wallet.problem(),
    logs: (after) => ring.since(after),
    jobs: () => journal.all().slice(0, 200).map(jobView),
    earnings: () =>
      earningsView(
        journal.all(),
        () => tokenBalance(init.connection, init.mint, identity.address),
        identity.address,
        init.mint,
      ),
    /** No new jobs; with stopRunning, the running one is stopped too (it is paid for the seconds it ran). */
    async pause(opts = {}) {
      if (avail.pause(Date.now())) log.info({ stopRunning: Boolean(opts.stopRunning) }, 'paused by owner')
      if (opts.stopRunning) slot.stop(STOP_REASON)
      await advertiser.publish()
      return status()
    },
    /** Takes work again; a program using the GPU now is ignored until it exits (the owner said go). */
    async resume() {
      const wasPaused = avail.pausedAt() !== undefined
      avail.resume()
      if (gpu.override() || wasPaused) log.info({}, 'resumed by owner')
      await advertiser.publish()
      return status()
    },
    async setPrice(pricePerHour) {
      if (!Number.isSafeInteger(pricePerHour) || pricePerHour < 1)
        throw new KilnError('PAYLOAD_INVALID', 'the price is a whole number of token base units per hour, at least 1')
      price = pricePerHour
      init.persistPrice?.(pricePerHour)
      log.info({ pricePerHour }, 'price set')
      await advertiser.publish()
      return status()
    },
    async start() {
      await tickOnce()
      inputCache = await InputCache.open({
        dir: join(init.dataDir, 'inputs'),
        maxBytes: init.inputCacheBytes ?? 20 * 1024 ** 3,
        log,
      })
      await handleProtocols({
        inputCache,
        mesh,
        identity,
        marketplace: init.marketplace,
        connection: init.connection,
        runtime,
        journal,
        nonces,
        dataDir: init.dataDir,
        gpuDeviceIds: hardware.gpus.map((g) => String(g.index)),
        log,
        slot,
        bonds,
        wallet,
        ring,
        accept,
        changed: () => void advertiser.publish(),
      })
      pollTimer = setInterval(
        () => void tickOnce().catch((e: unknown) => log.warn({ err: String(e) }, 'check failed')),
        init.pollMs ?? 5000,
      )
      pollTimer.unref()
      await advertiser.start()
    },
    async stop(waitMs = 15_000) {
      advertiser.stop()
      clearInterval(pollTimer)
      const running = slot.running()
      if (!running) return
      running.abort.abort(new Error('the provider is shutting down'))
      await Promise.race([running.done, new Promise((r) => setTimeout(r, waitMs).unref())])
    },
  }
}
