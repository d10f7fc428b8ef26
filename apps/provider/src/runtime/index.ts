/** The provider's Docker sandbox runtime: runs a job spec in a locked-down container. */
export { createDockerRuntime, describeEndpoint, DEFAULT_SOCKET_PATH } from './docker-runtime.ts'
export {
  buildHostConfig,
  buildContainerOptions,
  isRootUser,
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
} from './sandbox.ts'
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
export type { DockerRuntime, PingResult, RunError, RunOutput, RunRequest, RunResult, RuntimeInit } from './types.ts'
