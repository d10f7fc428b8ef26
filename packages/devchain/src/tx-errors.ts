/**
 * LiteSVM reports transaction errors as numbers (fieldless variants) or small objects; an
 * RPC node reports them in serde's JSON form (`"BlockhashNotFound"`,
 * `{"InstructionError":[0,{"Custom":1}]}`). The name tables follow litesvm 1.x's const
 * enums, which are declared only as types and so cannot be imported as values.
 */
const TX_ERRORS = [
  'AccountInUse',
  'AccountLoadedTwice',
  'AccountNotFound',
  'ProgramAccountNotFound',
  'InsufficientFundsForFee',
  'InvalidAccountForFee',
  'AlreadyProcessed',
  'BlockhashNotFound',
  'CallChainTooDeep',
  'MissingSignatureForFee',
  'InvalidAccountIndex',
  'SignatureFailure',
  'InvalidProgramForExecution',
  'SanitizeFailure',
  'ClusterMaintenance',
  'AccountBorrowOutstanding',
  'WouldExceedMaxBlockCostLimit',
  'UnsupportedVersion',
  'InvalidWritableAccount',
  'WouldExceedMaxAccountCostLimit',
  'WouldExceedAccountDataBlockLimit',
  'TooManyAccountLocks',
  'AddressLookupTableNotFound',
  'InvalidAddressLookupTableOwner',
  'InvalidAddressLookupTableData',
  'InvalidAddressLookupTableIndex',
  'InvalidRentPayingAccount',
  'WouldExceedMaxVoteCostLimit',
  'WouldExceedAccountDataTotalLimit',
  'MaxLoadedAccountsDataSizeExceeded',
  'ResanitizationNeeded',
  'InvalidLoadedAccountsDataSizeLimit',
  'UnbalancedTransaction',
  'ProgramCacheHitMaxLimit',
  'CommitCancelled',
] as const

const IX_ERRORS = [
  'GenericError',
  'InvalidArgument',
  'InvalidInstructionData',
  'InvalidAccountData',
  'AccountDataTooSmall',
  'InsufficientFunds',
  'IncorrectProgramId',
  'MissingRequiredSignature',
  'AccountAlreadyInitialized',
  'UninitializedAccount',
  'UnbalancedInstruction',
  'ModifiedProgramId',
  'ExternalAccountLamportSpend',
  'ExternalAccountDataModified',
  'ReadonlyLamportChange',
  'ReadonlyDataModified',
  'DuplicateAccountIndex',
  'ExecutableModified',
  'RentEpochModified',
  'NotEnoughAccountKeys',
  'AccountDataSizeChanged',
  'AccountNotExecutable',
  'AccountBorrowFailed',
  'AccountBorrowOutstanding',
  'DuplicateAccountOutOfSync',
  'InvalidError',
  'ExecutableDataModified',
  'ExecutableLamportChange',
  'ExecutableAccountNotRentExempt',
  'UnsupportedProgramId',
  'CallDepth',
  'MissingAccount',
  'ReentrancyNotAllowed',
  'MaxSeedLengthExceeded',
  'InvalidSeeds',
  'InvalidRealloc',
  'ComputationalBudgetExceeded',
  'PrivilegeEscalation',
  'ProgramEnvironmentSetupFailure',
  'ProgramFailedToComplete',
  'ProgramFailedToCompile',
  'Immutable',
  'IncorrectAuthority',
  'AccountNotRentExempt',
  'InvalidAccountOwner',
  'ArithmeticOverflow',
  'UnsupportedSysvar',
  'IllegalOwner',
  'MaxAccountsDataAllocationsExceeded',
  'MaxAccountsExceeded',
  'MaxInstructionTraceLengthExceeded',
  'BuiltinProgramsMustConsumeComputeUnits',
  'BorshIoError',
] as const

export type TxErrorJson = string | Record<string, unknown>

/** Agave's wording for the errors people meet most; others fall back to their name. */
const TX_MESSAGES: Record<string, string> = {
  AccountNotFound: 'Attempt to debit an account but found no record of a prior credit.',
  AlreadyProcessed: 'This transaction has already been processed',
  BlockhashNotFound: 'Blockhash not found',
  InsufficientFundsForFee: 'Insufficient funds for fee',
  SignatureFailure: 'Transaction did not pass signature verification',
  ProgramAccountNotFound: 'Attempt to load a program that does not exist',
}
const IX_MESSAGES: Record<string, string> = {
  MissingRequiredSignature: 'missing required signature for instruction',
  InsufficientFunds: 'insufficient funds for instruction',
  InvalidAccountData: 'invalid account data for instruction',
  InvalidInstructionData: 'invalid instruction data',
  IncorrectProgramId: 'incorrect program id for instruction',
  UninitializedAccount: 'instruction requires an initialized account',
  AccountAlreadyInitialized: 'instruction requires an uninitialized account',
}

function ixErrorJson(e: unknown): TxErrorJson {
  if (typeof e === 'number') return IX_ERRORS[e] ?? `InstructionError${e}`
  const o = e as { code?: number; msg?: string }
  if (typeof o.code === 'number') return { Custom: o.code }
  if (typeof o.msg === 'string') return { BorshIoError: o.msg }
  return 'GenericError'
}

/** Converts a litesvm `FailedTransactionMetadata.err()` value to the RPC's JSON form. */
export function txErrorJson(err: unknown): TxErrorJson {
  if (typeof err === 'number') return TX_ERRORS[err] ?? `TransactionError${err}`
  const o = err as { index?: number; accountIndex?: number; err?: () => unknown; constructor?: { name?: string } }
  if (typeof o.err === 'function' && typeof o.index === 'number')
    return { InstructionError: [o.index, ixErrorJson(o.err())] }
  if (typeof o.index === 'number') return { DuplicateInstruction: o.index }
  if (typeof o.accountIndex === 'number') {
    const name = o.constructor?.name?.includes('Restricted')
      ? 'ProgramExecutionTemporarilyRestricted'
      : 'InsufficientFundsForRent'
    return { [name]: { account_index: o.accountIndex } }
  }
  return String(err)
}

/** Human wording, as in agave's `Display` for `TransactionError`. */
export function txErrorMessage(err: TxErrorJson): string {
  if (typeof err === 'string') return TX_MESSAGES[err] ?? err
  const ix = err.InstructionError
  if (Array.isArray(ix)) {
    const [index, inner] = ix as [number, TxErrorJson]
    let text: string
    if (typeof inner === 'string') text = IX_MESSAGES[inner] ?? inner
    else if (typeof inner.Custom === 'number') text = `custom program error: 0x${inner.Custom.toString(16)}`
    else text = JSON.stringify(inner)
    return `Error processing Instruction ${index}: ${text}`
  }
  const rent = err.InsufficientFundsForRent as { account_index?: number } | undefined
  if (rent) return `Transaction results in an account (${rent.account_index}) with insufficient funds for rent`
  return JSON.stringify(err)
}

/** Execution errors land on chain (fee charged, status recorded); the others drop the tx. */
export function landsOnChain(err: TxErrorJson): boolean {
  return typeof err !== 'string'
}
