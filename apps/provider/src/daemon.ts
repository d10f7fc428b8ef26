import type { Connection } from '@solana/web3.js'
import { checkLock, cosignSettlement } from '@kiln/escrow'
import type { Channel, MeshNode } from '@kiln/mesh'
import {
  CoordinatorFrame, isEscrowIdOf, isKilnError, Kind, KilnError, Lease, leaseCost, NonceCache, open, OUTPUT_CHUNK_BYTES, parseOrThrow,
  Protocol, seal, SettleRequest, type Address, type CapacityAdvert, type Hardware, type Identity, type ResultReceipt, type WireError,
} from '@kiln/protocol'
import { JobJournal } from './jobs.ts'
import type { DockerRuntime, RunResult } from './runtime/index.ts'

export interface Logger {
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
}

export interface ProviderInit {
  identity: Identity
  mesh: MeshNode
  runtime: DockerRuntime
  connection: Connection
  mint: Address
  /** The marketplace (arbiter) whose leases this provider accepts. */
  marketplace: Address
  hardware: Hardware
  pricePerHour: number
  region: string
  dataDir: string
  version: string
  log: Logger
  advertIntervalMs?: number
}

/**
 * The provider: advertises what it has, accepts leases only from its marketplace and only
 * when the escrow is funded on chain (it checks for itself), runs them in the sandbox, and
 * co-signs settlements that pay it what its own receipt says it earned.
 */
export function createProviderDaemon(init: ProviderInit) {
  const { identity, mesh, runtime, log } = init
  const journal = new JobJournal(init.dataDir)
  const nonces = new NonceCache()
  const running = new Map<string, AbortController>()
  let seq = Date.now()
  let dockerNote: string | undefined
  let timer: NodeJS.Timeout | undefined

  const advert = (): CapacityAdvert => {
    const busy = running.size > 0
    const available = !dockerNote && !busy
    const reason = dockerNote ?? (busy ? 'running a job' : undefined)
    return {
      peerId: mesh.peerId, addrs: mesh.multiaddrs(), seq: ++seq, hardware: init.hardware,
      free: busy ? { cpu: 0, memoryMb: 0, gpus: 0 } : { cpu: init.hardware.cpuCores, memoryMb: init.hardware.memoryMb, gpus: init.hardware.gpus.length },
      pricePerHour: init.pricePerHour, region: init.region, version: init.version, available, ...(reason ? { reason } : {}),
    }
  }

  const publish = async () => {
    const ping = await runtime.ping()
    dockerNote = ping.ok ? undefined : `Docker engine unavailable: ${ping.reason}`
    await mesh.publishAdvert(advert()).catch((e: unknown) => log.warn({ err: String(e) }, 'advert not published'))
  }

  async function onJob(ch: Channel): Promise<void> {
    const first = parseOrThrow(CoordinatorFrame, await ch.nextJson(30_000), 'coordinator frame')
    if (first.t !== 'lease') throw new KilnError('PAYLOAD_INVALID', 'expected a lease frame first')
    let lease: Lease
    try {
      lease = await acceptLease(first.envelope)
    } catch (e) {
      const err = toWire(e)
      log.warn({ code: err.code, err: err.message }, 'lease refused')
      await ch.sendJson({ t: 'refused', error: err })
      return
    }
    journal.put({ lease, state: 'accepted', acceptedAt: Date.now() })
    await ch.sendJson({ t: 'accepted' })
    const abort = new AbortController()
    running.set(lease.jobId, abort)
    void publish()
    try {
      const result = await runWithStreaming(ch, lease, abort.signal)
      const receipt = receiptOf(lease, result)
      journal.put({ lease, state: 'finished', receipt, acceptedAt: journal.get(lease.jobId)?.acceptedAt ?? Date.now() })
      if (result.output) {
        const { tar } = result.output
        const chunks = Math.ceil(tar.byteLength / OUTPUT_CHUNK_BYTES)
        await ch.sendJson({ t: 'output', bytes: tar.byteLength, digest: result.output.digest, chunks })
        for (let i = 0; i < chunks; i++) await ch.send(tar.subarray(i * OUTPUT_CHUNK_BYTES, (i + 1) * OUTPUT_CHUNK_BYTES))
      }
      await ch.sendJson({ t: 'receipt', envelope: seal(identity, Kind.receipt, receipt, { ttlMs: 3600_000 }) })
      await ch.nextJson(30_000).catch(() => undefined)
      log.info({ jobId: lease.jobId, status: receipt.status, outputDigest: receipt.outputDigest }, 'job finished')
    } finally {
      running.delete(lease.jobId)
      void publish()
    }
  }

  async function acceptLease(raw: unknown): Promise<Lease> {
    const { payload: lease } = open(raw, { kind: Kind.lease, schema: Lease, signer: init.marketplace, nonces })
    if (lease.provider !== identity.address) throw new KilnError('LEASE_REFUSED', 'the lease names another provider')
    if (lease.arbiter !== init.marketplace || lease.mint !== init.mint) throw new KilnError('LEASE_REFUSED', 'the lease names another arbiter or mint')
    if (lease.pricePerHour < init.pricePerHour) throw new KilnError('LEASE_REFUSED', `lease pays ${lease.pricePerHour}/h, below this provider's price ${init.pricePerHour}/h`)
    if (running.size > 0) throw new KilnError('LEASE_REFUSED', 'already running a job')
    if (journal.has(lease.jobId) && journal.get(lease.jobId)?.lease.vault === lease.vault) throw new KilnError('LEASE_REFUSED', 'this lease was already accepted once')
    const r = lease.spec.resources
    if (r.cpu > init.hardware.cpuCores || r.memoryMb > init.hardware.memoryMb || r.gpu.count > init.hardware.gpus.length) {
      throw new KilnError('LEASE_REFUSED', 'the job asks for more than this provider has', { asked: r })
    }
    if (dockerNote) throw new KilnError('DOCKER_UNAVAILABLE', dockerNote)
    if (!isEscrowIdOf(lease.escrowId, lease.jobId)) throw new KilnError('LEASE_REFUSED', 'the escrow id does not belong to this job')
    const lock = await checkLock(init.connection, {
      jobId: lease.escrowId, mint: lease.mint, vault: lease.vault, client: lease.client, provider: identity.address, arbiter: lease.arbiter, amount: lease.lockAmount,
    })
    if (!lock.ok) throw new KilnError('ESCROW_NOT_FUNDED', `escrow not funded on chain: ${lock.reason}`, { vault: lease.vault })
    return lease
  }

  async function runWithStreaming(ch: Channel, lease: Lease, signal: AbortSignal): Promise<RunResult> {
    let logSeq = 0
    let pending: { stream: 'stdout' | 'stderr'; text: string }[] = []
    let sending = Promise.resolve()
    const flush = () => {
      if (pending.length === 0) return
      const chunks = pending
      pending = []
      const first = logSeq
      logSeq += chunks.length
      sending = sending.then(() => ch.sendJson({ t: 'log', seq: first, chunks })).catch(() => {})
    }
    const flusher = setInterval(flush, 200)
    try {
      const result = await runtime.run({
        jobId: lease.jobId, spec: lease.spec, signal,
        onStart: (at) => { sending = sending.then(() => ch.sendJson({ t: 'started', at })).catch(() => {}) },
        onLog: (stream, text) => {
          for (let i = 0; i < text.length; i += 16_000) pending.push({ stream, text: text.slice(i, i + 16_000) })
          if (pending.length >= 64) flush()
        },
      })
      flush()
      await sending
      return result
    } finally {
      clearInterval(flusher)
    }
  }

  function receiptOf(lease: Lease, r: RunResult): ResultReceipt {
    return {
      jobId: lease.jobId, provider: identity.address, status: r.status, exitCode: r.exitCode,
      ...(r.error ? { error: { code: new KilnError(r.error.kind, r.error.message).code, message: r.error.message.slice(0, 1000) } } : {}),
      outputDigest: r.output?.digest ?? null, outputBytes: r.output?.bytes ?? 0, logDigest: r.logDigest, logBytes: r.logBytes,
      startedAt: r.startedAt, endedAt: r.endedAt, containerSeconds: r.containerSeconds,
      gpuSeconds: r.containerSeconds * lease.spec.resources.gpu.count,
    }
  }

  async function onSettle(ch: Channel): Promise<void> {
    try {
      const raw = (await ch.nextJson<{ envelope?: unknown }>(15_000))?.envelope
      const { payload } = open(raw, { kind: Kind.settleRequest, schema: SettleRequest, signer: init.marketplace, nonces })
      const rec = journal.get(payload.jobId)
      if (!rec) throw new KilnError('SETTLEMENT_REFUSED', `no lease ${payload.jobId} on record`)
      const earned = rec.receipt && rec.receipt.startedAt !== null && rec.receipt.status === 'succeeded'
        ? leaseCost(rec.lease.pricePerHour, rec.receipt.containerSeconds, rec.lease.lockAmount) : 0
      // We sign a release only if it pays us at least what our receipt earned; a refund only
      // when our own record says we earned nothing.
      const expect = { vault: rec.lease.vault, mint: rec.lease.mint, ...(earned > 0 ? { minPayout: { to: identity.address, amount: earned } } : {}) }
      if (payload.action === 'refund' && earned > 0) throw new KilnError('SETTLEMENT_REFUSED', `refund asked, but our receipt earned ${earned}`)
      const transaction = cosignSettlement({ tx: payload.transaction, signer: identity, expect })
      await ch.sendJson({ ok: true, transaction })
      log.info({ jobId: payload.jobId, action: payload.action, earned }, 'settlement co-signed')
    } catch (e) {
      const error = toWire(e)
      log.warn({ code: error.code, err: error.message }, 'settlement refused')
      await ch.sendJson({ ok: false, error }).catch(() => {})
    }
  }

  return {
    journal,
    advert,
    async start() {
      await runtime.reconcile().then((r) => r.removed.length && log.info({ removed: r.removed }, 'removed containers left by a crash'), () => {})
      await mesh.handle(Protocol.job, (ch) => onJob(ch).catch((e: unknown) => log.warn({ err: String(e) }, 'job stream failed')))
      await mesh.handle(Protocol.settle, onSettle)
      // Early adverts can be lost while the gossip mesh forms, so start fast and back off:
      // 0.5, 1, 2, 4, 8 s, then every interval.
      let delay = 500
      const every = init.advertIntervalMs ?? 10_000
      const loop = async () => {
        await publish()
        timer = setTimeout(() => void loop(), delay)
        timer.unref()
        delay = Math.min(delay * 2, every)
      }
      await loop()
    },
    async stop() {
      clearTimeout(timer)
      for (const a of running.values()) a.abort()
    },
  }
}

function toWire(e: unknown): WireError {
  if (isKilnError(e)) return { code: e.code, kind: e.kind, message: e.message.slice(0, 2000) }
  return { code: 'KILN_5006', kind: 'LEASE_REFUSED', message: String((e as Error)?.message ?? e).slice(0, 2000) }
}

export type ProviderDaemon = ReturnType<typeof createProviderDaemon>
