import { isAbsolute, posix } from 'node:path'
import type Dockerode from 'dockerode'
import { INPUT_MOUNT_ROOT, type JobSpec } from '@kiln/protocol'

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
/**
 * The names of the secrets a container got as env (comma-separated): crash recovery reads
 * their values back from the container's own config to mask them in the engine's log copy.
 */
export const LABEL_SECRETS = 'kiln.secrets'

const MiB = 1024 * 1024

/**
 * The engine's own copy of a job's output, in json-file logs: at most LOG_FILES files of
 * this size, oldest dropped first, so a job printing without end cannot fill the disk. The
 * run reads its log from the attach stream, which no cap touches; only crash recovery reads
 * these files (leftovers.ts), and it says when they may have lost the start.
 */
export const LOG_FILE_MAX_BYTES = 16 * MiB
export const LOG_FILES = 2

/**
 * What a GPU container may use of the driver: CUDA (compute) and nvidia-smi/NVML (utility),
 * not graphics, video or display. Docker's nvidia driver turns the capabilities of the device
 * request into NVIDIA_DRIVER_CAPABILITIES; without `compute` a scratch image gets no libcuda.
 */
export const GPU_CAPABILITIES = ['gpu', 'compute', 'utility']
export const NVIDIA_DRIVER_CAPABILITIES = 'compute,utility'

/** A read-only input in the container: a host file or folder at a path under /in. */
export interface InputMount {
  hostPath: string
  containerPath: string
}

export interface HostConfigOptions {
  /** Inputs, bound read-only. Each containerPath must be under /in/ and each hostPath absolute. */
  mounts?: readonly InputMount[]
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
  /** Secret values by name, added to the env (containerEnv). */
  secretEnv?: Readonly<Record<string, string>>
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
    Mounts: [{ Type: 'bind', Source: outDir, Target: OUT_PATH, ReadOnly: false }, ...inputMounts(opts.mounts ?? [])],
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
    if (ids && ids.length > 0 && ids.length < gpus)
      throw new Error(`the job needs ${gpus} GPUs but only ${ids.length} device ids were given (${ids.join(', ')})`)
    // Count and DeviceIDs are exclusive in the engine; ids pin the job to the GPUs pickGpus chose.
    host.DeviceRequests = [
      ids && ids.length > 0
        ? { Driver: 'nvidia', DeviceIDs: ids.slice(0, gpus), Capabilities: [GPU_CAPABILITIES] }
        : { Driver: 'nvidia', Count: gpus, Capabilities: [GPU_CAPABILITIES] },
    ]
  }
  return host
}

/**
 * Input binds, read-only, private propagation (no host mount made later under the source shows
 * up in the job). The paths come from the provider's own code (the spec's mount points were
 * validated by the schema, the host paths are its input cache), so a bad one is a bug: thrown.
 */
function inputMounts(mounts: readonly InputMount[]): Dockerode.MountSettings[] {
  return mounts.map(({ hostPath, containerPath }) => {
    const normal = posix.normalize(containerPath)
    if (normal !== containerPath || !containerPath.startsWith(`${INPUT_MOUNT_ROOT}/`) || normal.endsWith('/'))
      throw new Error(`input mount ${JSON.stringify(containerPath)} is not a plain path under ${INPUT_MOUNT_ROOT}/`)
    if (!isAbsolute(hostPath)) throw new Error(`input mount source ${JSON.stringify(hostPath)} is not an absolute path`)
    return {
      Type: 'bind',
      Source: hostPath,
      Target: containerPath,
      ReadOnly: true,
      BindOptions: { Propagation: 'rprivate' },
    }
  })
}

/**
 * The container's environment: the spec's, then the secrets (a name in both is refused by the
 * schema; here too, since a secret silently replacing a variable would be a surprise), then the
 * NVIDIA variables, which neither the spec nor the image may set: with the nvidia runtime as the
 * engine's default, an image's NVIDIA_VISIBLE_DEVICES=all (CUDA base images set it) would hand a
 * CPU job every GPU of the machine. `void` means none.
 */
export function containerEnv(
  spec: JobSpec,
  secretEnv: Readonly<Record<string, string>> = {},
  gpuDeviceIds?: readonly string[],
): string[] {
  const env: Record<string, string> = { ...spec.env }
  for (const [name, value] of Object.entries(secretEnv)) {
    if (name in spec.env) throw new Error(`secret ${name} is also a plain env variable of the spec`)
    env[name] = value
  }
  const gpus = spec.resources.gpu.count
  // With a device request the engine appends its own NVIDIA_VISIBLE_DEVICES after these (the
  // last one counts); for a request by count only it knows the devices, so ours is left out.
  delete env.NVIDIA_VISIBLE_DEVICES
  if (gpus === 0) env.NVIDIA_VISIBLE_DEVICES = 'void'
  else if (gpuDeviceIds?.length) env.NVIDIA_VISIBLE_DEVICES = gpuDeviceIds.slice(0, gpus).join(',')
  env.NVIDIA_DRIVER_CAPABILITIES = NVIDIA_DRIVER_CAPABILITIES
  return Object.entries(env).map(([k, v]) => `${k}=${v}`)
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
    Env: containerEnv(spec, opts.secretEnv, opts.gpuDeviceIds),
    User: opts.user ?? (isRootUser(imageUser) ? SANDBOX_USER : imageUser),
    Labels: {
      [LABEL_MANAGED]: '1',
      [LABEL_JOB]: jobId,
      ...(opts.owner ? { [LABEL_OWNER]: opts.owner } : {}),
      ...(opts.secretEnv && Object.keys(opts.secretEnv).length
        ? { [LABEL_SECRETS]: Object.keys(opts.secretEnv).join(',') }
        : {}),
    },
    AttachStdin: false,
    AttachStdout: true,
    AttachStderr: true,
    Tty: false,
    OpenStdin: false,
    HostConfig: buildHostConfig(spec, outDir, opts),
  }
}
