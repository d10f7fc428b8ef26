export { assertParties, multisigAddress, vaultAddress, multisigSeed, vaultSeed, MULTISIG_THRESHOLD, type Parties } from './derive.ts'
export { createEscrow, type Escrow, type JobParties, type Payout, type SettlementExpectation, type SettlementStatus } from './arbiter.ts'
export { checkLock, lockFunds, tokenBalance, type LockCheck, type VaultRef } from './lock.ts'
export { cosignSettlement, decodeSettlement, type CosignExpectation, type DecodedSettlement } from './cosign.ts'
