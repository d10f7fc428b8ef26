import type Dockerode from 'dockerode'
import type { JobSpec } from '@kiln/protocol'

/**
 * The sandbox a job runs in, as pure functions of the spec, so that every limit can be
 * unit-tested without a Docker engine (and GPU requests without a GPU).
 */

/** Where the job's outputs go inside the container; the only writable path besides /tmp. */
export const OUT_PATH = '/out'
/** nobody:nogroup. Numeric, so it works in FROM scratch images that have no /etc/passwd. */
export const SANDBOX_USER = '65534:65534'
export const PIDS_LIMIT = 256
export const TMPFS_OPTIONS = 'rw,noexec,nosuid,size=64m'

/** Labels that mark a container as ours; reconcile() removes only containers carrying them. */
export const LABEL_MANAGED = 'kiln.managed'
export const LABEL_JOB = 'kiln.job'
/**
 * The provider that made the container. Several providers can share one engine (a devnet,
 * the tests): each reconciles only its own, never a neighbour's running job.
 */
export const LABEL_OWNER = 'kiln.owner'

const MiB = 1024 * 1024

/**
 * The engine's own copy of a job's output, in json-file logs: at most LOG_FILES files of
 * this size, oldest dropped first, so a job printing without end cannot fill the disk. The
 * run reads its log from the attach stream, which no cap touches; only crash recovery reads
 * these files (leftovers.ts), and it says when they may have lost the start.
 */
export const LOG_FILE_MAX_BYTES = 16 * MiB
export const LOG_FILES = 2

export interface HostConfigOptions {
  /**
   * Pin the job to these GPUs (indices or UUIDs as nvidia-smi prints them). Without it the
   * driver picks the first `count` GPUs, which is only right when one job has the machine.
   */
  gpuDeviceIds?: string[]
  /** Labels the container with its provider (LABEL_OWNER). */
  owner?: string
  /**
   * The network a job with `network: true` joins: the provider's egress network (network.ts).
   * Never Docker's default bridge, which reaches the host and its LAN; without it, no network.
   */
  network?: string
  /** Run as this `uid:gid` whatever the image says (a provider that is not root runs jobs as itself). */
  user?: string
  /** Size of each of the engine's LOG_FILES log files for the container. Default LOG_FILE_MAX_BYTES. */
  logFileMaxBytes?: number
}

export function buildHostConfig(spec: JobSpec, outDir: string, opts: HostConfigOptions = {}): Dockerode.HostConfig {
  const memory = spec.resources.memoryMb * MiB
  const host: Dockerode.HostConfig = {
    NetworkMode: spec.network && opts.network ? opts.network : 'none',
    CapDrop: ['ALL'],
    SecurityOpt: ['no-new-privileges'],
    Privileged: false,
    ReadonlyRootfs: true,
    // Programs still expect a scratch /tmp; noexec so it cannot host dropped binaries.
    Tmpfs: { '/tmp': TMPFS_OPTIONS },
    // `Mounts` (not `Binds`) so a missing source is an error instead of a new root-owned dir.
    Mounts: [{ Type: 'bind', Source: outDir, Target: OUT_PATH, ReadOnly: false }],
    Memory: memory,
    // Equal to Memory: no swap, so the limit is a real limit and OOM ends the job promptly.
    MemorySwap: memory,
    NanoCpus: Math.round(spec.resources.cpu * 1e9),
    PidsLimit: PIDS_LIMIT,
    // No shared memory segments with other containers or the host.
    IpcMode: 'private',
    // We read State.OOMKilled and the exit code before removing the container ourselves.
    AutoRemove: false,
    // json-file whatever the engine's default driver: crash recovery reads it back with `docker logs`.
    LogConfig: {
      Type: 'json-file',
      Config: { 'max-size': String(opts.logFileMaxBytes ?? LOG_FILE_MAX_BYTES), 'max-file': String(LOG_FILES) },
    },
  }
  const gpus = spec.resources.gpu.count
  if (gpus > 0) {
    const ids = opts.gpuDeviceIds
    host.DeviceRequests = [
      ids && ids.length > 0
        ? { Driver: 'nvidia', DeviceIDs: ids.slice(0, gpus), Capabilities: [['gpu']] }
        : { Driver: 'nvidia', Count: gpus, Capabilities: [['gpu']] },
    ]
  }
  return host
}

/** True when an image's configured user is root, which the sandbox replaces. */
export function isRootUser(user: string | undefined): boolean {
  if (user === undefined || user.trim() === '') return true
  const name = user.split(':')[0] ?? ''
  return name === '0' || name === 'root'
}

/**
 * The full container definition. `imageUser` is the image's Config.User: an image that
 * already names a non-root user keeps it (its files may be owned by that user); one that
 * runs as root, or names no user, runs as nobody.
 */
export function buildContainerOptions(
  jobId: string,
  spec: JobSpec,
  outDir: string,
  imageUser: string | undefined,
  opts: HostConfigOptions = {},
): Dockerode.ContainerCreateOptions {
  return {
    Image: spec.image,
    // The spec's command replaces the image's CMD (arguments to its ENTRYPOINT, if any).
    ...(spec.command ? { Cmd: spec.command } : {}),
    Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
    User: opts.user ?? (isRootUser(imageUser) ? SANDBOX_USER : imageUser),
    Labels: { [LABEL_MANAGED]: '1', [LABEL_JOB]: jobId, ...(opts.owner ? { [LABEL_OWNER]: opts.owner } : {}) },
    AttachStdin: false,
    AttachStdout: true,
    AttachStderr: true,
    Tty: false,
    OpenStdin: false,
    HostConfig: buildHostConfig(spec, outDir, opts),
  }
}
