import { join } from 'node:path'
import type { Connection } from '@solana/web3.js'
import { checkLock, tokenBalance } from '@kiln/escrow'
import type { MeshNode } from '@kiln/mesh'
import { KilnError, NonceCache, Protocol, type Address, type CapacityAdvert, type Hardware, type Identity, type Lease } from '@kiln/protocol'
import { Bonds } from './bonds.ts'
import { availability, foreignProcesses, overrideAutoPause, processLabel, resumesAt, stepAutoPause, type AutoPause } from './gamer.ts'
import { queryComputeApps, queryGpus, type GpuProcess, type GpuStatus } from './hardware.ts'
import { serveResult } from './result-stream.ts'
import { serveJob } from './job-stream.ts'
import type { Logger } from './log.ts'
import { JobJournal } from './jobs.ts'
import { acceptLease, type LockChecker } from './leases.ts'
import { LogRing } from './log-ring.ts'
import { createNetworkJobs } from './network-jobs.ts'
import { recoverJobs } from './recovery.ts'
import type { DockerRuntime } from './runtime/index.ts'
import { landedOn, serveSettle } from './settle.ts'
import { advertView, earningsSummary, earningsView, jobView, type EarningsView, type JobView, type StatusView } from './views.ts'
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
}

interface Running {
  lease: Lease
  abort: AbortController
  acceptedAt: number
  startedAt: number | null
  stopping: string | null
  done: Promise<void>
  finish: () => void
}

const STOP_REASON = 'paused by its owner (paid pro rata for the time used)'

/**
 * The provider: advertises what it has and whether it takes work, accepts leases only from
 * its marketplace and only when the escrow is funded on chain (it checks for itself), runs
 * them in the sandbox, and co-signs settlements that pay it what its own receipt earned.
 * The owner can pause it; it pauses itself while someone else's program uses a GPU.
 */
export function createProviderDaemon(init: ProviderInit) {
  const { identity, mesh, runtime, log, hardware } = init
  const journal = new JobJournal(init.dataDir)
  const nonces = new NonceCache()
  const ring = new LogRing()
  const pollMs = init.pollMs ?? 5000
  const auto = { enabled: init.autoPause?.enabled ?? true, idleMs: init.autoPause?.idleMs ?? 300_000, ignore: init.autoPause?.ignore ?? [] }
  const watchGpus = hardware.gpus.length > 0
  const cuda = init.gpus?.[0]?.cuda
  let price = init.pricePerHour
  let pausedAt: number | undefined
  let autoState: AutoPause = {}
  let foreignNow: GpuProcess[] = []
  // Nothing is accepted before the first check of the engine (and crash recovery after it).
  let dockerProblem: string | undefined = 'the engine was not checked yet'
  let recovered = false
  let current: Running | undefined
  let reserved: string | undefined
  const bonds = new Bonds({ connection: init.connection, identity, mint: init.mint, log })
  const wallet = createWallet({ connection: init.connection, mint: init.mint, address: identity.address, log })
  let gpus: GpuStatus[] = init.gpus ?? hardware.gpus.map((g) => ({ ...g, utilizationPct: null, temperatureC: null }))
  let gpuProcs: Array<GpuProcess & { kiln: boolean }> = []
  let gpuProblem: string | undefined
  let lastAdvert: CapacityAdvert | undefined
  let lastPublishedAt = 0
  let seq = Date.now()
  let advertTimer: NodeJS.Timeout | undefined
  let pollTimer: NodeJS.Timeout | undefined
  let ticking: Promise<void> | undefined
  const networkJobs = createNetworkJobs({ accept: init.acceptNetworkJobs === true, runtime, log })

  const avail = () => availability({
    paused: pausedAt !== undefined, ...(auto.enabled && autoState.by ? { auto: autoState.by } : {}),
    ...(dockerProblem ? { dockerProblem } : {}), recovering: !recovered, busy: current !== undefined || reserved !== undefined,
    ...(wallet.problem() ? { unfunded: wallet.problem() } : {}),
  })

  const advert = (): CapacityAdvert => {
    const a = avail()
    const none = !a.available
    return {
      peerId: mesh.peerId, addrs: mesh.multiaddrs(), seq: ++seq, hardware,
      free: none ? { cpu: 0, memoryMb: 0, gpus: 0 } : { cpu: hardware.cpuCores, memoryMb: hardware.memoryMb, gpus: hardware.gpus.length },
      pricePerHour: price, region: init.region, version: init.version, available: a.available, ...(a.reason ? { reason: a.reason } : {}),
      ...(init.operator ? { operator: init.operator } : {}), ...(networkJobs.taken() ? { network: true } : {}),
    }
  }

  const publish = async () => {
    const a = advert()
    lastAdvert = a
    lastPublishedAt = Date.now()
    await mesh.publishAdvert(a).catch((e: unknown) => log.warn({ err: String(e) }, 'advert not published'))
  }

  async function sampleGpus(): Promise<void> {
    try {
      const [now, procs] = await Promise.all([queryGpus(init.nvidiaSmi ?? 'nvidia-smi', cuda), queryComputeApps(init.nvidiaSmi ?? 'nvidia-smi')])
      const kiln = procs.length ? await runtime.kilnPids().catch(() => new Set<number>()) : new Set<number>()
      gpus = now
      gpuProcs = procs.map((p) => ({ ...p, kiln: kiln.has(p.pid) }))
      foreignNow = foreignProcesses(procs, kiln, auto.ignore)
      gpuProblem = undefined
      if (!auto.enabled) return
      const next = stepAutoPause(autoState, foreignNow, Date.now(), auto.idleMs)
      if (next.by && !autoState.by) log.info({ pid: next.by.pid, process: next.by.name }, 'auto-paused: another program uses the GPU')
      if (!next.by && autoState.by) log.info({}, 'auto-resumed: the GPU was idle long enough')
      autoState = next
    } catch (e) {
      // A failed poll is no evidence the game has ended: the auto-pause state stays as it was.
      gpuProblem = `nvidia-smi failed: ${(e as Error).message}`
    }
  }

  /** Checks the engine and the GPUs; republishes at once when what the advert says changed. */
  async function tick(): Promise<void> {
    const before = JSON.stringify([avail(), networkJobs.taken()])
    const ping = await runtime.ping()
    if (ping.ok && !recovered) {
      try {
        const r = await recoverJobs({ journal, runtime, provider: identity.address, resultsDir: join(init.dataDir, 'results'), log })
        if (r.finished.length + r.failed.length + r.removed.length) log.info(r, 'crash recovery done')
        recovered = true
      } catch (e) {
        log.warn({ err: (e as Error).message }, 'crash recovery failed; will retry')
      }
    }
    if (ping.ok !== (dockerProblem === undefined)) log[ping.ok ? 'info' : 'warn'](ping.ok ? { version: ping.version } : { reason: ping.reason }, ping.ok ? 'Docker engine reachable' : 'Docker engine unavailable')
    dockerProblem = ping.ok ? undefined : ping.reason
    if (ping.ok) await networkJobs.check()
    await wallet.check()
    if (watchGpus) await sampleGpus()
    if (JSON.stringify([avail(), networkJobs.taken()]) !== before) await publish()
  }
  const tickOnce = () => (ticking ??= tick().finally(() => { ticking = undefined }))

  const accept = async (raw: unknown): Promise<Lease> => {
    const lease = await acceptLease(raw, {
      marketplace: init.marketplace, nonces, checkLock: init.checkLock ?? ((ref) => checkLock(init.connection, ref)),
      state: (l) => {
        const a = avail()
        return {
          self: identity.address, marketplace: init.marketplace, mint: init.mint, pricePerHour: price, hardware, now: Date.now(),
          ...(a.state !== 'running' && a.reason ? { pausedReason: a.reason } : {}),
          ...(current || reserved ? { runningJobId: current?.lease.jobId ?? reserved } : {}),
          ...(dockerProblem ? { dockerProblem } : {}), recovering: !recovered, ...(networkJobs.problem() ? { noNetworkJobs: networkJobs.problem() } : {}),
          ...(journal.get(l.jobId) ? { acceptedVault: journal.get(l.jobId)?.lease.vault } : {}),
        }
      },
    })
    // The vault check took a while: the owner may have paused, or another lease got in first.
    const a = avail()
    if (a.state !== 'running') throw new KilnError('LEASE_REFUSED', `this provider is paused (${a.reason})`)
    if (dockerProblem) throw new KilnError('DOCKER_UNAVAILABLE', `Docker engine unavailable: ${dockerProblem}`)
    if (current || reserved) throw new KilnError('LEASE_REFUSED', `already running a job (${current?.lease.jobId ?? reserved})`)
    reserved = lease.jobId
    await bonds.start(lease).catch((e: unknown) => {
      reserved = undefined
      wallet.stale()
      throw e
    })
    return lease
  }

  const jobCtx = {
    resultsDir: join(init.dataDir, 'results'),
    identity, runtime, journal, log, accept,
    ...(hardware.gpus.length ? { gpuDeviceIds: hardware.gpus.map((g) => String(g.index)) } : {}),
    /** The receipt goes out only once the bond is in the vault: the marketplace pays no run without it. */
    beforeReceipt: (lease: Lease) => bonds.settled(lease),
    begin(lease: Lease, abort: AbortController) {
      bonds.watch(lease, abort)
      let finish = () => {}
      const done = new Promise<void>((resolve) => { finish = resolve })
      current = { lease, abort, acceptedAt: Date.now(), startedAt: null, stopping: null, done, finish }
      reserved = undefined
      ring.begin(lease.jobId)
      void publish()
    },
    started(at: number) { if (current) current.startedAt = at },
    onLog(stream: 'stdout' | 'stderr', text: string) { ring.push(stream, text) },
    end(lease: Lease) {
      bonds.forget(lease.jobId)
      wallet.stale()
      if (reserved === lease.jobId) reserved = undefined
      if (current?.lease.jobId !== lease.jobId) return
      const finished = current
      current = undefined
      finished.finish()
      void publish()
    },
  }

  function status(): StatusView {
    const a = avail()
    const until = resumesAt(autoState, foreignNow.length, auto.idleMs)
    return {
      address: identity.address, version: init.version, region: init.region, pricePerHour: price,
      state: a.state, available: a.available, reason: a.reason ?? null, pausedAt: pausedAt ?? null,
      autoPause: { enabled: auto.enabled, idleSec: auto.idleMs / 1000, by: autoState.by ? { pid: autoState.by.pid, name: processLabel(autoState.by) } : null, resumesAt: until ?? null },
      docker: { ok: dockerProblem === undefined, problem: dockerProblem ?? null }, recovered,
      network: { accepted: networkJobs.taken(), problem: networkJobs.problem() ?? null },
      hardware: { cpuCores: hardware.cpuCores, memoryMb: hardware.memoryMb, diskMb: hardware.diskMb, cpuOnly: hardware.gpus.length === 0, gpus, gpuProcesses: gpuProcs, gpuProblem: gpuProblem ?? null },
      job: current ? {
        jobId: current.lease.jobId, image: current.lease.spec.image, acceptedAt: current.acceptedAt, startedAt: current.startedAt,
        pricePerHour: current.lease.pricePerHour, lockAmount: current.lease.lockAmount, timeoutSec: current.lease.spec.timeoutSec, stopping: current.stopping,
      } : null,
      advert: advertView(lastAdvert, lastPublishedAt), peers: mesh.peers().length, earnings: earningsSummary(journal.all()),
    }
  }

  return {
    journal,
    advert,
    status,
    /** Why the wallet cannot post a bond (the advert says unavailable meanwhile), if it cannot. */
    unfunded: () => wallet.problem(),
    logs: (after: number) => ring.since(after),
    jobs: (): JobView[] => journal.all().slice(0, 200).map(jobView),
    earnings: (): Promise<EarningsView> => earningsView(journal.all(), () => tokenBalance(init.connection, init.mint, identity.address), identity.address, init.mint),
    /** No new jobs; with stopRunning, the running one is stopped too (it is paid for the seconds it ran). */
    async pause(opts: { stopRunning?: boolean } = {}): Promise<StatusView> {
      if (pausedAt === undefined) log.info({ stopRunning: Boolean(opts.stopRunning) }, 'paused by owner')
      pausedAt ??= Date.now()
      if (opts.stopRunning && current && !current.stopping) {
        current.stopping = STOP_REASON
        current.abort.abort(new Error(STOP_REASON))
      }
      await publish()
      return status()
    },
    /** Takes work again; a program using the GPU now is ignored until it exits (the owner said go). */
    async resume(): Promise<StatusView> {
      if (pausedAt !== undefined || autoState.by) log.info({}, 'resumed by owner')
      pausedAt = undefined
      if (autoState.by) autoState = overrideAutoPause(autoState, foreignNow)
      await publish()
      return status()
    },
    async setPrice(pricePerHour: number): Promise<StatusView> {
      if (!Number.isSafeInteger(pricePerHour) || pricePerHour < 1) throw new KilnError('PAYLOAD_INVALID', 'the price is a whole number of token base units per hour, at least 1')
      price = pricePerHour
      init.persistPrice?.(pricePerHour)
      log.info({ pricePerHour }, 'price set')
      await publish()
      return status()
    },
    async start() {
      await tickOnce()
      await mesh.handle(Protocol.job, (ch) => serveJob(jobCtx, ch).catch((e: unknown) => log.warn({ err: String(e) }, 'job stream failed')))
      // A settlement returns our bond and pays us: read the wallet again at the next check.
      await mesh.handle(Protocol.settle, (ch) => serveSettle({ identity, marketplace: init.marketplace, journal, nonces, log, landed: (sig) => landedOn(init.connection, sig) }, ch).finally(() => wallet.stale()))
      await mesh.handle(Protocol.result, (ch) => serveResult({ identity, marketplace: init.marketplace, journal, nonces, log }, ch))
      pollTimer = setInterval(() => void tickOnce().catch((e: unknown) => log.warn({ err: String(e) }, 'check failed')), pollMs)
      pollTimer.unref()
      // Early adverts can be lost while the gossip mesh forms, so start fast and back off:
      // 0.5, 1, 2, 4, 8 s, then every interval.
      let delay = 500
      const every = init.advertIntervalMs ?? 10_000
      const loop = async () => {
        await publish()
        advertTimer = setTimeout(() => void loop(), delay)
        advertTimer.unref()
        delay = Math.min(delay * 2, every)
      }
      await loop()
    },
    /** Stops the running job (it ends failed and is journaled) and waits up to `waitMs` for that. */
    async stop(waitMs = 15_000) {
      clearTimeout(advertTimer)
      clearInterval(pollTimer)
      const running = current
      if (!running) return
      running.abort.abort(new Error('the provider is shutting down'))
      await Promise.race([running.done, new Promise((r) => setTimeout(r, waitMs).unref())])
    },
  }
}

export type ProviderDaemon = ReturnType<typeof createProviderDaemon>
