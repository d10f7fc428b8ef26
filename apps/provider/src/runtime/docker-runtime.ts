import { readdir, rm } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import Dockerode from 'dockerode'
import { isKilnError, KilnError, silentLogger } from '@kiln/protocol'
import { LABEL_MANAGED, LABEL_OWNER, LOG_FILE_MAX_BYTES } from './sandbox.ts'
import { JOB_DIR_PREFIX, runJob, type RunContext } from './run.ts'
import { dockerMessage, isConnectionError, withTimeout } from './errors.ts'
import { pullImage, registryOf } from './pull.ts'
import { collectLeftover, killLeftover, kilnPids, listLeftovers } from './leftovers.ts'
import { createEgress } from './network.ts'
import { unmountOut } from './out-dir.ts'
import type { DockerRuntime, EnsureImageOptions, PingResult, RuntimeInit } from './types.ts'

export const DEFAULT_SOCKET_PATH = '/var/run/docker.sock'
const MiB = 1024 * 1024

/** Where the client talks to the engine, for messages a person will read. */
export function describeEndpoint(docker: Dockerode): string {
  const modem = docker.modem as { socketPath?: string; host?: string; port?: string | number; protocol?: string }
  if (modem.socketPath) return modem.socketPath
  return `${modem.protocol ?? 'http'}://${modem.host ?? 'localhost'}${modem.port ? `:${modem.port}` : ''}`
}

export function createDockerRuntime(init: RuntimeInit): DockerRuntime {
  // An explicit socket path: without options docker-modem would read DOCKER_HOST itself.
  const docker = init.docker ?? new Dockerode({ socketPath: DEFAULT_SOCKET_PATH })
  const endpoint = describeEndpoint(docker)
  const logger = init.logger ?? silentLogger
  const pingTimeoutMs = init.pingTimeoutMs ?? 5000
  const pullTimeoutMs = init.pullTimeoutMs ?? 10 * 60_000

  const unavailable = (e: unknown): KilnError =>
    new KilnError(
      'DOCKER_UNAVAILABLE',
      `cannot reach the Docker engine at ${endpoint}: ${dockerMessage(e)}`,
      { endpoint },
      { cause: e },
    )

  async function ping(): Promise<PingResult> {
    try {
      const v = await withTimeout(docker.version(), pingTimeoutMs, `no answer within ${pingTimeoutMs} ms`)
      return { ok: true, version: v.Version }
    } catch (e) {
      return { ok: false, reason: `cannot reach the Docker engine at ${endpoint}: ${dockerMessage(e)}` }
    }
  }

  async function hasImage(ref: string): Promise<boolean> {
    try {
      await docker.getImage(ref).inspect()
      return true
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode === 404) return false
      throw unavailable(e)
    }
  }

  async function ensureImage(ref: string, opts: EnsureImageOptions = {}): Promise<void> {
    // With credentials, pull even when present: the registry decides whether this client may have it.
    if (!opts.auth && (await hasImage(ref))) return
    let reason: string
    try {
      logger.info({ image: ref, registry: registryOf(ref), withCredentials: opts.auth !== undefined }, 'pulling image')
      await pullImage(docker, ref, opts, pullTimeoutMs)
      if (await hasImage(ref)) return
      reason = 'the pull finished but the image is still not present'
    } catch (e) {
      if (isConnectionError(e)) throw unavailable(e)
      if (isKilnError(e)) throw e
      reason = dockerMessage(e)
    }
    throw new KilnError('IMAGE_NOT_FOUND', `image ${ref} is not present locally and could not be pulled: ${reason}`, {
      image: ref,
    })
  }

  /**
   * Whether the engine can give a container GPUs. Docker's nvidia device driver needs the NVIDIA
   * container toolkit, whose install registers the `nvidia` runtime; that registration is what the
   * engine shows (`docker info` Runtimes). A toolkit without it is not seen here: its jobs would
   * fail at start with "could not select device driver", which run() reports the same way.
   */
  async function gpuSupport(): Promise<{ ok: true } | { ok: false; reason: string }> {
    const info = (await docker.info()) as { Runtimes?: Record<string, unknown> }
    const runtimes = Object.keys(info.Runtimes ?? {})
    return runtimes.includes('nvidia')
      ? { ok: true }
      : {
          ok: false,
          reason: `the Docker engine at ${endpoint} has no nvidia runtime (runtimes: ${runtimes.join(', ') || 'none'}); install the NVIDIA Container Toolkit and run nvidia-ctk runtime configure --runtime=docker`,
        }
  }

  const egress = createEgress(docker, init.egress)
  let warnedFs = false
  const ctx: RunContext = {
    docker,
    // Absolute: the engine resolves a bind mount's source on its side, not in our cwd.
    workDir: resolve(init.workDir),
    maxLogBytes: init.maxLogBytes ?? MiB,
    logFileMaxBytes: init.logFileMaxBytes ?? LOG_FILE_MAX_BYTES,
    stopGraceSec: init.stopGraceSec ?? 5,
    logger,
    ensureImage,
    gpuSupport,
    unavailable,
    activeContainers: new Set(),
    activeDirs: new Set(),
    ...(init.owner ? { owner: init.owner } : {}),
    egress: () => egress.ensure(),
    self: { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 },
    ownOutputFs: init.ownOutputFs ?? process.getuid?.() === 0,
    outputFsFailed: (reason) => {
      if (warnedFs) return
      warnedFs = true
      logger.warn({ reason }, 'job outputs get no filesystem of their own; only a watch holds them to outputs.maxBytes')
    },
  }
  const ours = [`${LABEL_MANAGED}=1`, ...(init.owner ? [`${LABEL_OWNER}=${init.owner}`] : [])]

  async function reconcile(): Promise<{ removed: string[] }> {
    let leftovers: Dockerode.ContainerInfo[]
    try {
      leftovers = await docker.listContainers({ all: true, filters: { label: ours } })
    } catch (e) {
      throw unavailable(e)
    }
    const removed: string[] = []
    for (const c of leftovers) {
      if (ctx.activeContainers.has(c.Id)) continue
      const name = c.Names[0]?.replace(/^\//, '') ?? c.Id
      try {
        await docker.getContainer(c.Id).remove({ force: true, v: true })
        removed.push(name)
        logger.info({ container: name, job: c.Labels[`kiln.job`] }, 'removed leftover container')
      } catch (e) {
        // 404: gone in the meantime, which is what we wanted.
        if ((e as { statusCode?: number }).statusCode !== 404)
          logger.warn({ container: name, err: dockerMessage(e) }, 'could not remove leftover container')
      }
    }
    // Job dirs left by a crash hold the previous run's outputs; they are never reused.
    const names = await readdir(ctx.workDir).catch(() => [] as string[])
    for (const name of names) {
      const dir = join(ctx.workDir, name)
      if (!name.startsWith(JOB_DIR_PREFIX) || ctx.activeDirs.has(dir)) continue
      await unmountOut(dir).catch((e: unknown) =>
        logger.warn({ dir, err: String(e) }, "could not unmount a leftover job's /out"),
      )
      await rm(dir, { recursive: true, force: true }).catch((e: unknown) =>
        logger.warn({ dir, err: String(e) }, 'could not remove leftover job dir'),
      )
    }
    return { removed }
  }

  const engine = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn()
    } catch (e) {
      throw isConnectionError(e) ? unavailable(e) : e
    }
  }

  return {
    ping,
    hasImage,
    ensureImage,
    run: (req) => runJob(ctx, req),
    reconcile,
    leftovers: () => engine(() => listLeftovers(docker, ours)),
    collect: (l, maxOutputBytes) =>
      engine(() =>
        collectLeftover(docker, l, {
          maxLogBytes: ctx.maxLogBytes,
          logFileMaxBytes: ctx.logFileMaxBytes,
          maxOutputBytes,
        }),
      ),
    kill: (id) => engine(() => killLeftover(docker, id)),
    kilnPids: () => engine(() => kilnPids(docker)),
    egress: () => egress.ensure(),
  }
}
