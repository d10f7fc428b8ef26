export {
  createKilnClient,
  type KilnClient,
  type KilnClientInit,
  type JobDetails,
  type JobSummary,
  type LogLine,
  type PublicJob,
  type NetworkInfo,
  type Quote,
  type RunDetails,
  type WatchHandlers,
} from './client.ts'
export { toKilnError } from './errors.ts'
export type {
  JobView,
  LockView,
  PendingCosignView,
  ProviderView,
  PublicJobView,
  RunView,
  SettlementMoney,
  VerdictView,
} from '@kiln/api'
export { unpackTar as unpackOutput } from '@kiln/artifacts'
export { packFolder, uploadInput, type UploadedInput, type UploadOptions, type UploadTarget } from './uploads.ts'
