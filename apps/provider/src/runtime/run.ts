import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { join } from 'node:path'
import type Dockerode from 'dockerode'
import { isKilnError, randomHex, type KilnError, type KilnErrorName, type Logger } from '@kiln/protocol'
import { LogCollector } from './logs.ts'
import { buildContainerOptions, OUT_PATH } from './sandbox.ts'
import { createOutDir, watchOutDir, OUTPUT_MARGIN_BYTES, type OutDir } from './out-dir.ts'
import { containerIds } from './user.ts'
import { packCanonicalTar } from '@kiln/artifacts'
import { dockerMessage, isConnectionError, sleep } from './errors.ts'
import type { EgressStatus } from './network.ts'
import type { EnsureImageOptions, RunError, RunOutput, RunRequest, RunResult } from './types.ts'

/** Per-job dirs in workDir start with this, so reconcile() knows which ones are ours. */
export const JOB_DIR_PREFIX = 'kiln-job-'
/** The engine's words when the nvidia device driver or its hook is missing or fails. */
const GPU_DRIVER_ERROR = /could not select device driver|nvidia-container-cli|nvidia-container-runtime/i
/** How long to wait for the attach stream to drain after the container exits. */
const LOG_DRAIN_MS = 2000

export interface RunContext {
  docker: Dockerode
  workDir: string
  maxLogBytes: number
  /** Each of the engine's log files for a job container (sandbox.ts). */
  logFileMaxBytes: number
  stopGraceSec: number
  logger: Logger
  ensureImage(ref: string, opts?: EnsureImageOptions): Promise<void>
  /** Whether the engine can run GPU containers (asked before each GPU job). */
  gpuSupport(): Promise<{ ok: true } | { ok: false; reason: string }>
  unavailable(e: unknown): KilnError
  /** Containers and dirs of runs in flight, which reconcile() must not touch. */
  activeContainers: Set<string>
  activeDirs: Set<string>
  owner?: string
  /** The egress network for jobs with `network: true`, set up (again) before each one. */
  egress(): Promise<EgressStatus>
  /** Our own uid and gid: as root we make /out the container user's; else the container runs as us. */
  self: { uid: number; gid: number }
  /** Give /out a filesystem of its own, capped at outputs.maxBytes (out-dir.ts). */
  ownOutputFs: boolean
  /** Told when /out could not get its own filesystem, so only the watch limits it. */
  outputFsFailed(reason: string): void
}

/** Container names allow [a-zA-Z0-9_.-]; job ids are validated elsewhere, but be safe. */
function nameSafe(jobId: string): string {
  return jobId.replace(/[^a-zA-Z0-9_.-]/g, '-').slice(0, 64)
}

function abortReason(signal: AbortSignal | undefined): string {
  const r: unknown = signal?.reason
  if (r instanceof Error) return r.message
  return typeof r === 'string' ? r : 'aborted by the provider'
}

export async function runJob(ctx: RunContext, req: RunRequest): Promise<RunResult> {
  const { docker, logger } = ctx
  const { jobId, spec, signal } = req
  // Masked before anything leaves the collector: the digest is over the masked text too (types.ts RunRequest.mask).
  const log = new LogCollector(
    ctx.maxLogBytes,
    req.onLog,
    (err) => logger.warn({ jobId, err: String(err) }, 'onLog listener threw'),
    req.mask,
  )
  let startedAt: number | null = null
  let endedAt: number | null = null
  let exitCode: number | null = null
  let stoppedBy: RunResult['stoppedBy']
  let error: RunError | undefined
  let output: RunOutput | null = null
  let container: Dockerode.Container | undefined
  let jobDir: string | undefined
  let out: OutDir | undefined
  let outBytes = 0
  const maxOut = spec.outputs.maxBytes
  const fail = (kind: KilnErrorName, message: string): void => {
    error ??= { kind, message } // the first cause wins; later ones are consequences
  }

  try {
    if (signal?.aborted) {
      fail('CONTAINER_FAILED', `the run was stopped before it started: ${abortReason(signal)}`)
      return finish()
    }
    try {
      await ctx.ensureImage(spec.image, req.pull)
    } catch (e) {
      if (!isKilnError(e)) throw e
      fail(e.kind, e.message)
      return finish()
    }
    const image = await docker.getImage(spec.image).inspect()
    if (signal?.aborted) {
      // Aborted while the image was being pulled: don't start a container just to stop it.
      fail('CONTAINER_FAILED', `the run was stopped before it started: ${abortReason(signal)}`)
      return finish()
    }
    // Checked per job: a firewall reload since start may have dropped the rules.
    const egress = spec.network ? await ctx.egress() : undefined
    if (egress && !egress.ok) {
      fail(
        'NETWORK_UNAVAILABLE',
        `the job asks for network access, but this provider cannot isolate it from the host and LAN: ${egress.reason}`,
      )
      return finish()
    }

    if (spec.resources.gpu.count > 0) {
      const gpu = await ctx.gpuSupport()
      if (!gpu.ok) {
        fail('GPU_UNAVAILABLE', `the job asks for ${spec.resources.gpu.count} GPU(s), but ${gpu.reason}`)
        return finish()
      }
    }

    await mkdir(ctx.workDir, { recursive: true })
    jobDir = await mkdtemp(join(ctx.workDir, `${JOB_DIR_PREFIX}${nameSafe(jobId)}-`))
    ctx.activeDirs.add(jobDir)
    const outDir = join(jobDir, 'out')
    await mkdir(outDir, { mode: 0o700 })

    const root = ctx.self.uid === 0
    const options = buildContainerOptions(jobId, spec, outDir, image.Config?.User, {
      gpuDeviceIds: req.gpuDeviceIds,
      ...(req.mounts ? { mounts: req.mounts } : {}),
      ...(req.secretEnv ? { secretEnv: req.secretEnv } : {}),
      logFileMaxBytes: ctx.logFileMaxBytes,
      ...(ctx.owner ? { owner: ctx.owner } : {}),
      ...(egress?.ok ? { network: egress.network } : {}),
      // Not root, we cannot give /out to another user: the job runs as us instead (never as root).
      ...(root ? {} : { user: `${ctx.self.uid}:${ctx.self.gid}` }),
    })
    const created = await docker.createContainer({ name: `kiln-${nameSafe(jobId)}-${randomHex(3)}`, ...options })
    container = created
    ctx.activeContainers.add(created.id)
    const owner = root ? await containerIds(created, options.User ?? '') : undefined
    out = await createOutDir(
      { jobDir, maxBytes: maxOut, ownFs: ctx.ownOutputFs, ...(owner ? { owner } : {}) },
      ctx.outputFsFailed,
    )

    // Attach before start, so not a byte of output is missed.
    const stream = await created.attach({ stream: true, stdout: true, stderr: true })
    const drained = new Promise<void>((resolve) => {
      stream.on('end', resolve)
      stream.on('close', resolve)
      stream.on('error', () => resolve())
    })
    docker.modem.demuxStream(stream, log.writable('stdout'), log.writable('stderr'))

    await created.start()
    startedAt = Date.now()
    try {
      req.onStart?.(startedAt)
    } catch (err) {
      logger.warn({ jobId, err: String(err) }, 'onStart listener threw')
    }

    // A timeout is a hard limit: SIGKILL at once. An abort (cancel, pause) gets a grace
    // period, so a job that checkpoints on SIGTERM can do so.
    const timer = setTimeout(() => {
      stoppedBy ??= 'timeout'
      created.kill().catch(() => {}) // 409 when it exited meanwhile: nothing to do
    }, spec.timeoutSec * 1000)
    const onAbort = (): void => {
      stoppedBy ??= 'abort'
      created.stop({ t: ctx.stopGraceSec }).catch(() => {})
    }
    signal?.addEventListener('abort', onAbort, { once: true })
    if (signal?.aborted) onAbort()
    // The limit holds while the job runs, not only when its outputs are packed.
    const unwatch = watchOutDir(out, maxOut, (used) => {
      stoppedBy ??= 'output'
      outBytes = used
      created.kill().catch(() => {})
    })
    try {
      const waited = (await created.wait()) as { StatusCode?: number }
      exitCode = typeof waited.StatusCode === 'number' ? waited.StatusCode : null
    } finally {
      clearTimeout(timer)
      unwatch()
      signal?.removeEventListener('abort', onAbort)
    }
    endedAt = Date.now()
    // Filled its capped /out and exited before the watch looked.
    const used = await out.used()
    if (stoppedBy === undefined && used > maxOut + OUTPUT_MARGIN_BYTES) {
      stoppedBy = 'output'
      outBytes = used
    }

    const state = (await created.inspect()).State
    // OOMKilled is set when any process in the container was killed; the exit code is the
    // job's verdict (a job may survive a killed helper), so it only explains a failure.
    if (state.OOMKilled && stoppedBy === undefined && exitCode !== 0) stoppedBy = 'oom'
    await Promise.race([drained, sleep(LOG_DRAIN_MS)])

    if (stoppedBy === 'timeout') {
      fail('CONTAINER_TIMEOUT', `the job ran past its timeout of ${spec.timeoutSec} s and was killed`)
    } else if (stoppedBy === 'abort') {
      fail('CONTAINER_FAILED', `the run was stopped: ${abortReason(signal)}`)
    } else if (stoppedBy === 'output') {
      fail(
        'OUTPUT_TOO_LARGE',
        `output exceeded outputs.maxBytes=${maxOut}: the job put ${outBytes} bytes in ${OUT_PATH} and was stopped`,
      )
    } else if (stoppedBy === 'oom') {
      fail(
        'CONTAINER_FAILED',
        `the container ran out of memory (limit ${spec.resources.memoryMb} MiB) and was killed (exit code ${exitCode ?? 'unknown'})`,
      )
    } else if (exitCode !== 0) {
      fail('CONTAINER_FAILED', `the container exited with code ${exitCode ?? 'unknown'}`)
    }

    // Outputs are packed for failed runs too (partial results help the client debug), unless over the limit.
    try {
      if (stoppedBy !== 'output') output = await packCanonicalTar(outDir, { maxBytes: maxOut })
    } catch (e) {
      if (isKilnError(e, 'OUTPUT_TOO_LARGE')) fail(e.kind, `output exceeded outputs.maxBytes=${maxOut}: ${e.message}`)
      else if (isKilnError(e)) fail(e.kind, e.message)
      else fail('CONTAINER_FAILED', `could not pack ${OUT_PATH}: ${String(e)}`)
    }
    return finish()
  } catch (e) {
    // Engine-level trouble mid-run (the daemon died, the disk filled): report, don't throw.
    logger.warn({ jobId, err: dockerMessage(e) }, 'run failed in the runtime')
    if (isConnectionError(e)) fail('DOCKER_UNAVAILABLE', ctx.unavailable(e).message)
    else if (spec.resources.gpu.count > 0 && GPU_DRIVER_ERROR.test(dockerMessage(e)))
      fail('GPU_UNAVAILABLE', `the engine could not give the job its GPUs: ${dockerMessage(e)}`)
    else fail('CONTAINER_FAILED', `the runtime could not run the job: ${dockerMessage(e)}`)
    return finish()
  } finally {
    if (container) {
      await container.remove({ force: true, v: true }).catch((e: unknown) => {
        if ((e as { statusCode?: number }).statusCode !== 404)
          logger.warn({ jobId, err: dockerMessage(e) }, 'could not remove container')
      })
      ctx.activeContainers.delete(container.id)
    }
    await out
      ?.release()
      .catch((e: unknown) => logger.warn({ jobId, err: String(e) }, "could not unmount the job's /out"))
    if (jobDir) {
      await rm(jobDir, { recursive: true, force: true }).catch((e: unknown) =>
        logger.warn({ jobId, dir: jobDir, err: String(e) }, 'could not remove job dir'),
      )
      ctx.activeDirs.delete(jobDir)
    }
  }

  function finish(): RunResult {
    const collected = log.finish()
    const end = endedAt ?? Date.now()
    return {
      status: error === undefined ? 'succeeded' : 'failed',
      exitCode,
      ...(error ? { error } : {}),
      output,
      logDigest: collected.digest,
      logBytes: collected.bytes,
      log: collected.text,
      logTruncated: collected.truncated,
      ...(stoppedBy ? { stoppedBy } : {}),
      startedAt,
      endedAt: end,
      containerSeconds: startedAt === null ? 0 : Math.max(0, (end - startedAt) / 1000),
    }
  }
}
