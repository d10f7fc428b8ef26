import type Dockerode from 'dockerode'
import type { JobSpec, KilnErrorName, Logger, RegistryAuth } from '@kiln/protocol'
import type { InputMount } from './sandbox.ts'
import type { LogStream } from './logs.ts'
import type { CollectedLeftover, Leftover } from './leftovers.ts'
import type { EgressInit, EgressStatus } from './network.ts'

export interface RuntimeInit {
  /** Default: a client on /var/run/docker.sock (DOCKER_HOST is not read here; pass a client). */
  docker?: Dockerode
  /** Where per-job temp dirs go. Must be on the Docker engine's own filesystem: it is bind-mounted. */
  workDir: string
  /** Log bytes kept per run (head and tail); the rest is dropped with a marker. Default 1 MiB. */
  maxLogBytes?: number
  /** Size of each of the engine's log files for a job container (sandbox.ts LOG_FILES of them). Default 16 MiB. */
  logFileMaxBytes?: number
  /** Grace between SIGTERM and SIGKILL when a run is aborted. Default 5 s. Timeouts kill at once. */
  stopGraceSec?: number
  /** How long a ping may take before the engine counts as unreachable. Default 5 s. */
  pingTimeoutMs?: number
  /** How long a pull may take before it counts as failed. Default 10 min. */
  pullTimeoutMs?: number
  logger?: Logger
  /**
   * This provider's address: its containers carry it, and reconcile()/leftovers() see only
   * those. Without it they see every kiln.managed container on the engine.
   */
  owner?: string
  /** Names for the network jobs with `network: true` run on (network.ts); the defaults suit a provider. */
  egress?: EgressInit
  /**
   * Give each job's /out a filesystem of its own, a sparse ext4 image sized to outputs.maxBytes
   * and loop-mounted, so the kernel stops the job's writes there (needs root, loop devices and
   * mkfs.ext4). Default: when running as root. Without it, a watch on /out stops the job, later.
   */
  ownOutputFs?: boolean
}

export interface RunRequest {
  jobId: string
  spec: JobSpec
  onLog?: (stream: LogStream, text: string) => void
  onStart?: (startedAt: number) => void
  /** Abort = stop the container (cancellation, or the owner pausing the provider). */
  signal?: AbortSignal
  /** Pin GPUs for this run (see HostConfigOptions.gpuDeviceIds): pickGpus's ids. */
  gpuDeviceIds?: string[]
  /** The job's inputs, fetched and checked: bound read-only at their containerPath (under /in/). */
  mounts?: InputMount[]
  /** Secret values by name, added to the container's env. Never logged. */
  secretEnv?: Record<string, string>
  /**
   * Values replaced by *** in everything the run gives out of the job's output: what onLog
   * receives, the kept log, and logDigest/logBytes (which so cover what the client is sent, and
   * the coordinator's check of the streamed log against the receipt holds). Usually the
   * secretEnv values; values shorter than the protocol's MIN_MASKED_LENGTH are left alone.
   */
  mask?: string[]
  /** How to get the image when it is not here (or always, with credentials): see ensureImage. */
  pull?: EnsureImageOptions
}

export interface EnsureImageOptions {
  /**
   * Credentials for this one pull (a privateImage). Sent to the engine in the request's
   * X-Registry-Auth header only; not kept, not logged. With them the image is pulled even when
   * present, so the registry, not a cache filled for someone else, decides whether this client
   * may have it. They must be for the image's own registry, or they are not sent.
   */
  auth?: RegistryAuth
  /** Bytes of layers downloaded so far, and the sum of the layer sizes known so far (null: none yet). */
  onProgress?: (done: number, total: number | null) => void
}

export interface RunError {
  kind: KilnErrorName
  message: string
}

export interface RunOutput {
  tar: Buffer
  /** sha256 hex of `tar`. */
  digest: string
  bytes: number
  files: number
}

export interface RunResult {
  status: 'succeeded' | 'failed'
  exitCode: number | null
  error?: RunError
  /** The packed /out; null when the container never ran or /out could not be packed. */
  output: RunOutput | null
  /** sha256 of the full combined log as streamed. */
  logDigest: string
  logBytes: number
  /** The kept log (at most maxLogBytes, head and tail around a marker when cut). */
  log: string
  logTruncated: boolean
  /** What stopped the run early, when something did. */
  stoppedBy?: 'timeout' | 'abort' | 'oom' | 'output'
  startedAt: number | null
  endedAt: number
  containerSeconds: number
}

export type PingResult = { ok: true; version: string } | { ok: false; reason: string }

export interface DockerRuntime {
  /** Never throws; `reason` names the engine address and the error. */
  ping(): Promise<PingResult>
  hasImage(ref: string): Promise<boolean>
  /**
   * The local image if present, else a pull; IMAGE_NOT_FOUND (saying both) if neither works,
   * REGISTRY_AUTH_FAILED when the registry refuses the credentials (or asks for some).
   */
  ensureImage(ref: string, opts?: EnsureImageOptions): Promise<void>
  /** Never throws for job-level failures: those come back as status 'failed' with an error. */
  run(req: RunRequest): Promise<RunResult>
  /**
   * Removes leftover containers labelled kiln.managed=1 (from a crash) and leftover job
   * dirs in workDir. Runs in flight in this runtime are left alone.
   */
  reconcile(): Promise<{ removed: string[] }>
  /** kiln.managed containers on the engine with their state (for crash recovery). Throws DOCKER_UNAVAILABLE. */
  leftovers(): Promise<Leftover[]>
  /** A finished leftover's log digest and packed /out, as its run would have reported them. */
  collect(leftover: Leftover, maxOutputBytes: number): Promise<CollectedLeftover>
  /** SIGKILLs a leftover container (reconcile() removes it afterwards). */
  kill(containerId: string): Promise<void>
  /** Host PIDs in Kiln's running containers, so our own GPU use is not taken for the owner's. */
  kilnPids(): Promise<Set<number>>
  /**
   * Sets up (idempotently) the network that jobs with `network: true` run on and its firewall,
   * or says why it cannot. run() does this itself before every such job and refuses the job
   * (NETWORK_UNAVAILABLE) when it fails. Never throws.
   */
  egress(): Promise<EgressStatus>
}
