export { startDevchain, type Devchain, type DevchainInit } from './devchain.ts'
export type { FundOptions } from './dev.ts'
