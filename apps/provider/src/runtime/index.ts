/** The provider's Docker sandbox runtime: runs a job spec in a locked-down container. */
export { createDockerRuntime, describeEndpoint, DEFAULT_SOCKET_PATH } from './docker-runtime.ts'
export {
  buildHostConfig,
  buildContainerOptions,
  containerEnv,
  isRootUser,
  GPU_CAPABILITIES,
  NVIDIA_DRIVER_CAPABILITIES,
  OUT_PATH,
  SANDBOX_USER,
  PIDS_LIMIT,
  TMPFS_OPTIONS,
  LABEL_MANAGED,
  LABEL_JOB,
  LABEL_OWNER,
  LOG_FILES,
  LOG_FILE_MAX_BYTES,
  type HostConfigOptions,
  type InputMount,
} from './sandbox.ts'
export { pickGpus, type GpuPick } from './gpus.ts'
export { registryOf } from './pull.ts'
export type { Leftover, CollectedLeftover } from './leftovers.ts'
export {
  BLOCKED_RANGES,
  EGRESS_BRIDGE,
  EGRESS_NETWORK,
  egressRules,
  type EgressInit,
  type EgressStatus,
} from './network.ts'
export { LogCollector, type LogStream, type CollectedLog } from './logs.ts'
export type {
  DockerRuntime,
  EnsureImageOptions,
  PingResult,
  RunError,
  RunOutput,
  RunRequest,
  RunResult,
  RuntimeInit,
} from './types.ts'
