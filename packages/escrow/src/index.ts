export {
  assertParties,
  multisigAddress,
  vaultAddress,
  multisigSeed,
  vaultSeed,
  MULTISIG_THRESHOLD,
  type Parties,
} from './derive.ts'
export {
  createEscrow,
  type Escrow,
  type JobParties,
  type Payout,
  type SettlementExpectation,
  type SettlementStatus,
  type VaultKey,
} from './arbiter.ts'
export { checkLock, lockFunds, tokenBalance, type LockCheck, type VaultRef } from './lock.ts'
export { cosignSettlement, decodeSettlement, type CosignExpectation, type DecodedSettlement } from './cosign.ts'
export {
  planSettlement,
  payoutsFor,
  SETTLEMENT_OUTCOMES,
  type SettlementOutcome,
  type SettlementPlan,
  type SettlementPlanInput,
} from './plan.ts'
export { settleOnce, settlementSignature, type SettleInit, type SettleResult } from './settle.ts'
export { recoverVault, type Party, type RecoverInit, type Recovered } from './recover.ts'
