import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Channel } from '@kiln/mesh'
import {
  CoordinatorFrame,
  isKilnError,
  Kind,
  KilnError,
  OUTPUT_CHUNK_BYTES,
  openSecrets,
  parseOrThrow,
  seal,
  sha256Hex,
  type Identity,
  type Lease,
  type SecretBundle,
  type WireError,
} from '@kiln/protocol'
import type { InputCache } from './inputs/cache.ts'
import type { BlobSource } from './inputs/fetch.ts'
import { prepareInputs } from './inputs/prepare.ts'
import type { JobJournal } from './journal.ts'
import type { Logger } from './log.ts'
import { receiptOf } from './receipts.ts'
import type { DockerRuntime, RunResult } from './runtime/index.ts'

/** What the job protocol needs from the daemon: the decision, and hooks to keep its state. */
export interface JobStreamContext {
  identity: Identity
  runtime: DockerRuntime
  journal: JobJournal
  log: Logger
  /** Decides on a lease (signature, rules, escrow): returns it, or throws why not. */
  accept(raw: unknown): Promise<Lease>
  /** The lease was accepted: it is the running job now (abort stops it). */
  begin(lease: Lease, abort: AbortController): void
  started(at: number): void
  onLog(stream: 'stdout' | 'stderr', text: string): void
  /** The run is over, whatever happened. */
  end(lease: Lease): void
  /** Awaited before the result is sent (the bond being posted); a failure there is the marketplace's to judge. */
  beforeReceipt?(lease: Lease): Promise<void>
  gpuDeviceIds?: string[]
  /** Where outputs are kept until delivered. */
  resultsDir?: string
  /** Inputs: the local cache, and where uploaded bytes come from for a lease (the marketplace that sent it). */
  inputs?: { cache: InputCache; blobs(lease: Lease, marketplace: string): BlobSource; deadlineMs?: number }
}

/** The lease as it is kept on disk: without the sealed secrets (the journal must not hold them). */
const forJournal = (lease: Lease): Lease => {
  const { secrets: _sealed, ...rest } = lease
  return rest
}

export function toWire(e: unknown): WireError {
  if (isKilnError(e)) return { code: e.code, kind: e.kind, message: e.message.slice(0, 2000) }
  return { code: 'KILN_5006', kind: 'LEASE_REFUSED', message: String((e as Error)?.message ?? e).slice(0, 2000) }
}

/**
 * One job stream: a lease in; accepted or refused out; then started, logs, the packed output
 * and the signed receipt. Every step is journaled first, so a crash at any point leaves a
 * record that crash recovery can finish.
 */
export async function serveJob(ctx: JobStreamContext, ch: Channel): Promise<void> {
  const { journal, log } = ctx
  const first = parseOrThrow(CoordinatorFrame, await ch.nextJson(30_000), 'coordinator frame')
  if (first.t !== 'lease') throw new KilnError('PAYLOAD_INVALID', 'expected a lease frame first')
  let lease: Lease
  try {
    lease = await ctx.accept(first.envelope)
  } catch (e) {
    const err = toWire(e)
    log.warn({ code: err.code, err: err.message }, 'lease refused')
    await ch.sendJson({ t: 'refused', error: err })
    return
  }
  const abort = new AbortController()
  try {
    journal.put({ lease: forJournal(lease), state: 'accepted', acceptedAt: Date.now() })
  } catch (e) {
    ctx.end(lease) // the daemon reserved itself for this lease in accept()
    throw e
  }
  ctx.begin(lease, abort)
  const acked = readCoordinator(ch, abort, log, lease.jobId)
  try {
    await ch.sendJson({ t: 'accepted' })
    const result = await runWithStreaming(ctx, ch, lease, abort.signal)
    // (the receipt below is of the lease as accepted; its sealed secrets never reach the journal)
    await ctx.beforeReceipt?.(lease).catch(() => {})
    const receipt = receiptOf(lease, ctx.identity.address, result)
    journal.update(lease.jobId, { state: 'finished', receipt, startedAt: result.startedAt, delivered: false })
    if (result.output) {
      const { tar } = result.output
      // Kept on disk until delivered, so a coordinator that loses this stream can still fetch it.
      if (ctx.resultsDir) {
        mkdirSync(ctx.resultsDir, { recursive: true })
        const outputPath = join(ctx.resultsDir, `${result.output.digest}.tar`)
        writeFileSync(outputPath, tar)
        journal.update(lease.jobId, { outputPath })
      }
      const chunks = Math.ceil(tar.byteLength / OUTPUT_CHUNK_BYTES)
      await ch.sendJson({ t: 'output', bytes: tar.byteLength, digest: result.output.digest, chunks })
      for (let i = 0; i < chunks; i++) await ch.send(tar.subarray(i * OUTPUT_CHUNK_BYTES, (i + 1) * OUTPUT_CHUNK_BYTES))
    }
    await ch.sendJson({ t: 'receipt', envelope: seal(ctx.identity, Kind.receipt, receipt, { ttlMs: 3600_000 }) })
    journal.update(lease.jobId, { delivered: true })
    await Promise.race([acked, new Promise((r) => setTimeout(r, 30_000).unref())])
    log.info(
      { jobId: lease.jobId, status: receipt.status, outputDigest: receipt.outputDigest, error: receipt.error?.message },
      'job finished',
    )
  } catch (e) {
    // The stream died before a run could start: nothing ran, and the record must not claim otherwise.
    const rec = journal.get(lease.jobId)
    if (rec?.state === 'accepted')
      journal.update(lease.jobId, {
        state: 'failed',
        error: `the job stream failed before the run: ${(e as Error).message}`,
      })
    throw e
  } finally {
    ctx.end(lease)
  }
}

/**
 * Reads what the coordinator sends during a run: `cancel` stops the container (the client
 * cancelled; the seconds run are still paid), `ack` closes the exchange. Resolves at the ack
 * or when the stream ends.
 */
function readCoordinator(ch: Channel, abort: AbortController, log: Logger, jobId: string): Promise<void> {
  return (async () => {
    for (;;) {
      const raw = await ch.nextJson().catch(() => undefined)
      if (raw === undefined) return
      const frame = CoordinatorFrame.safeParse(raw)
      if (!frame.success) continue
      if (frame.data.t === 'ack') return
      if (frame.data.t === 'cancel' && !abort.signal.aborted) {
        log.info({ jobId }, 'run cancelled by the client')
        abort.abort(new Error('cancelled by the client'))
      }
    }
  })()
}

async function runWithStreaming(
  ctx: JobStreamContext,
  ch: Channel,
  lease: Lease,
  signal: AbortSignal,
): Promise<RunResult> {
  let logSeq = 0
  let mounts: { hostPath: string; containerPath: string }[] = []
  let pending: { stream: 'stdout' | 'stderr'; text: string }[] = []
  let sending = Promise.resolve()
  // Frames go out in order on one chain; a dead stream must not stop the run (its result is journaled).
  const send = (frame: object) => {
    sending = sending.then(() => ch.sendJson(frame)).catch(() => {})
  }
  const flush = () => {
    if (pending.length === 0) return
    const chunks = pending
    pending = []
    send({ t: 'log', seq: logSeq, chunks })
    logSeq += chunks.length
  }
  const flusher = setInterval(flush, 200)
  let release = () => {}
  try {
    // Before the container: the sealed secrets opened (admission checked they open), the
    // image pulled with the client's credentials for a private one, the inputs fetched and
    // checked. None of it is billed: billing starts at `started`.
    let bundle: SecretBundle | undefined
    const spec = lease.spec
    try {
      if (spec.secrets.length > 0 || spec.privateImage)
        bundle = openSecrets(ctx.identity, lease.secrets, {
          client: lease.client,
          jobId: lease.jobId,
          escrowId: lease.escrowId,
          names: spec.secrets,
          privateImage: spec.privateImage,
        })
      if (spec.privateImage)
        await ctx.runtime.ensureImage(spec.image, {
          ...(bundle?.registry ? { auth: bundle.registry } : {}),
          onProgress: (done, total) => send({ t: 'preparing', phase: 'pulling', done, total }),
        })
      if (spec.inputs.length > 0) {
        if (!ctx.inputs) throw new KilnError('INPUT_UNAVAILABLE', 'this provider has no input cache configured')
        const prepared = await prepareInputs(spec.inputs, {
          cache: ctx.inputs.cache,
          blobs: ctx.inputs.blobs(lease, ch.remote),
          signal,
          deadlineMs: ctx.inputs.deadlineMs ?? 10 * 60_000,
          log: ctx.log,
          onProgress: (done, total) => send({ t: 'preparing', phase: 'fetching', done, total }),
        })
        release = prepared.release
        mounts = prepared.mounts.map(({ hostPath, containerPath }) => ({ hostPath, containerPath }))
      }
    } catch (e) {
      return notRun(e)
    }
    const values = bundle ? Object.values(bundle.values) : []
    const result = await ctx.runtime.run({
      jobId: lease.jobId,
      spec: lease.spec,
      signal,
      ...(mounts.length ? { mounts } : {}),
      ...(values.length ? { secretEnv: bundle!.values, mask: values } : {}),
      ...(ctx.gpuDeviceIds?.length ? { gpuDeviceIds: ctx.gpuDeviceIds } : {}),
      onStart: (at) => {
        ctx.journal.update(lease.jobId, { state: 'running', startedAt: at })
        ctx.started(at)
        send({ t: 'started', at })
      },
      onLog: (stream, text) => {
        ctx.onLog(stream, text)
        for (let i = 0; i < text.length; i += 16_000) pending.push({ stream, text: text.slice(i, i + 16_000) })
        if (pending.length >= 64) flush()
      },
    })
    flush()
    await sending
    return result
  } finally {
    release()
    clearInterval(flusher)
  }
}

/** The result of a run that never started: what stopped its preparation, as the receipt's error. */
function notRun(e: unknown): RunResult {
  const err = isKilnError(e) ? e : new KilnError('CONTAINER_FAILED', String((e as Error)?.message ?? e))
  return {
    status: 'failed',
    exitCode: null,
    error: { kind: err.kind, message: err.message },
    output: null,
    logDigest: sha256Hex(new Uint8Array()),
    logBytes: 0,
    log: '',
    logTruncated: false,
    startedAt: null,
    endedAt: Date.now(),
    containerSeconds: 0,
  }
}
