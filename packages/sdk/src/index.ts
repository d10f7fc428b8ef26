export { createKilnClient, type KilnClient, type KilnClientInit, type JobDetails, type LogLine, type NetworkInfo, type Quote, type RunDetails, type WatchHandlers } from './client.ts'
export { toKilnError } from './errors.ts'
export { unpackTar as unpackOutput } from '@kiln/artifacts'
