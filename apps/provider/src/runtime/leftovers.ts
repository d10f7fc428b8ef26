import { existsSync } from 'node:fs'
import type Dockerode from 'dockerode'
import { isKilnError } from '@kiln/protocol'
import { packCanonicalTar } from '@kiln/artifacts'
import { LogCollector } from './logs.ts'
import { LABEL_JOB, LABEL_MANAGED, LABEL_SECRETS, LOG_FILES, OUT_PATH } from './sandbox.ts'
import { dockerMessage } from './errors.ts'
import { remountOut } from './out-dir.ts'
import type { RunOutput } from './types.ts'

/** A kiln.managed container found on the engine: what crash recovery needs to decide about it. */
export interface Leftover {
  id: string
  name: string
  jobId: string | undefined
  running: boolean
  exitCode: number | null
  oomKilled: boolean
  /** Milliseconds since the epoch, fractional (see engineTime). */
  startedAt: number | null
  finishedAt: number | null
  /** The host dir bound at /out, where the job's outputs are. */
  outDir: string | undefined
  /** The values of the secrets it got (from its own env): masked in its recovered log. */
  secretValues?: string[]
}

export interface CollectedLeftover {
  logDigest: string
  logBytes: number
  /** The engine's capped log files may have dropped the start: the digest covers what they kept. */
  logPartial: boolean
  log: string
  output: RunOutput | null
  /** Why /out could not be packed, when it could not. */
  outputError?: string
}

/**
 * Milliseconds, with the engine's nanoseconds kept as a fraction (Date.parse drops them, and a
 * short job can start and end within one millisecond). 0001-01-01T00:00:00Z means "never".
 */
export function engineTime(iso: string | undefined): number | null {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(iso ?? '')
  if (!m) return null
  const whole = Date.parse(`${m[1]}${m[3]}`)
  if (!Number.isFinite(whole) || whole <= 0) return null
  return whole + Number(`0.${m[2] ?? '0'}`) * 1000
}

/** Containers carrying all of `labels` (kiln.managed=1, and this provider's owner label). */
export async function listLeftovers(docker: Dockerode, labels: string[] = [`${LABEL_MANAGED}=1`]): Promise<Leftover[]> {
  const list = await docker.listContainers({ all: true, filters: { label: labels } })
  const out: Leftover[] = []
  for (const c of list) {
    let info: Dockerode.ContainerInspectInfo
    try {
      info = await docker.getContainer(c.Id).inspect()
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode === 404) continue // gone meanwhile
      throw e
    }
    const running = info.State.Running || info.State.Restarting || info.State.Paused
    out.push({
      id: c.Id,
      name: c.Names[0]?.replace(/^\//, '') ?? c.Id,
      jobId: c.Labels[LABEL_JOB],
      running,
      exitCode: running ? null : info.State.ExitCode,
      oomKilled: info.State.OOMKilled,
      startedAt: engineTime(info.State.StartedAt),
      finishedAt: running ? null : engineTime(info.State.FinishedAt),
      outDir: info.Mounts.find((m) => m.Destination === OUT_PATH)?.Source,
      ...secretsOf(c.Labels[LABEL_SECRETS], info.Config.Env),
    })
  }
  return out
}

/** A secret job's values, from the env the engine kept: the journal does not hold them. */
function secretsOf(label: string | undefined, env: string[] | null | undefined): { secretValues?: string[] } {
  if (!label) return {}
  const names = new Set(label.split(','))
  const secretValues = (env ?? [])
    .map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)] as const)
    .filter(([name]) => names.has(name))
    .map(([, value]) => value)
  return { secretValues }
}

/**
 * Splits the engine's multiplexed log stream (8-byte header: stream, 0, 0, 0, size BE) into
 * the collector, in the order the engine recorded it, so the digest is over the same bytes a
 * live run would have hashed.
 */
function demux(buf: Buffer, into: LogCollector): number {
  let at = 0
  let frames = 0
  while (at + 8 <= buf.length) {
    const stream = buf[at] === 2 ? 'stderr' : 'stdout'
    const size = buf.readUInt32BE(at + 4)
    into.push(stream, buf.subarray(at + 8, at + 8 + size))
    at += 8 + size
    frames++
  }
  return frames
}

/**
 * The fewest bytes json-file adds to one entry: {"log":"…","stream":"stdout","time":"<30>"}
 * and a newline. Escapes only add to it.
 */
const JSON_ENTRY_BYTES = 68

/**
 * Whether the engine may have dropped the start of the log. It drops a file only once the
 * files it keeps are full, so what it kept then fills at least LOG_FILES - 1 of them; below
 * that, nothing was dropped. The estimate of the file bytes is a lower bound, so a log that
 * lost its start is never taken for a whole one (a whole one near the cap may be flagged).
 */
function mayHaveDropped(payloadBytes: number, frames: number, logFileMaxBytes: number): boolean {
  return payloadBytes + frames * JSON_ENTRY_BYTES >= (LOG_FILES - 1) * logFileMaxBytes
}

/** Reads a finished leftover's log and packs its /out, as a live run would have. */
export async function collectLeftover(
  docker: Dockerode,
  l: Leftover,
  opts: { maxLogBytes: number; logFileMaxBytes: number; maxOutputBytes: number },
): Promise<CollectedLeftover> {
  const log = new LogCollector(opts.maxLogBytes, undefined, undefined, l.secretValues ?? [])
  const raw = await docker.getContainer(l.id).logs({ stdout: true, stderr: true, follow: false })
  const frames = demux(Buffer.isBuffer(raw) ? raw : Buffer.from(raw as unknown as string), log)
  const collected = log.finish()
  const logPartial = mayHaveDropped(collected.bytes, frames, opts.logFileMaxBytes)
  const base = { logDigest: collected.digest, logBytes: collected.bytes, logPartial, log: collected.text }
  if (!l.outDir || !existsSync(l.outDir))
    return { ...base, output: null, outputError: `the job's ${OUT_PATH} dir is gone` }
  try {
    await remountOut(l.outDir)
    return { ...base, output: await packCanonicalTar(l.outDir, { maxBytes: opts.maxOutputBytes }) }
  } catch (e) {
    return {
      ...base,
      output: null,
      outputError: isKilnError(e) ? e.message : `could not pack ${OUT_PATH}: ${String(e)}`,
    }
  }
}

/** Stops a leftover at once (SIGKILL): its run is already lost, there is nothing to wait for. */
export async function killLeftover(docker: Dockerode, id: string): Promise<void> {
  await docker
    .getContainer(id)
    .kill()
    .catch((e: unknown) => {
      // 409: not running any more; 404: gone. Both mean it is stopped.
      const status = (e as { statusCode?: number }).statusCode
      if (status !== 409 && status !== 404) throw new Error(`could not stop container ${id}: ${dockerMessage(e)}`)
    })
}

/**
 * Host PIDs of every process in Kiln's running containers (as `docker top` shows them), so
 * the GPU watch does not mistake our own jobs for the owner's game.
 */
export async function kilnPids(docker: Dockerode): Promise<Set<number>> {
  const list = await docker.listContainers({ filters: { label: [`${LABEL_MANAGED}=1`], status: ['running'] } })
  const pids = new Set<number>()
  for (const c of list) {
    const top = (await docker
      .getContainer(c.Id)
      .top()
      .catch(() => undefined)) as { Titles?: string[]; Processes?: string[][] } | undefined
    const col = top?.Titles?.indexOf('PID') ?? -1
    for (const row of top?.Processes ?? []) {
      const pid = Number(row[col < 0 ? 1 : col])
      if (Number.isInteger(pid) && pid > 0) pids.add(pid)
    }
  }
  return pids
}
