/**
 * Stable error codes, one range per area. Codes never change meaning once shipped;
 * callers match on `code`, never on message text.
 */
export const KilnErrorCode = {
  // 1xxx: envelopes and identities
  ENVELOPE_MALFORMED: 'KILN_1001',
  ENVELOPE_TOO_LARGE: 'KILN_1002',
  ENVELOPE_BAD_SIGNATURE: 'KILN_1003',
  ENVELOPE_EXPIRED: 'KILN_1004',
  ENVELOPE_NOT_YET_VALID: 'KILN_1005',
  ENVELOPE_REPLAYED: 'KILN_1006',
  ENVELOPE_WRONG_KIND: 'KILN_1007',
  ENVELOPE_WRONG_SIGNER: 'KILN_1008',
  /** Sealed secrets that this provider cannot open, or that were sealed for another lease or provider. */
  SECRETS_UNSEALABLE: 'KILN_1009',
  KEYPAIR_FILE_INVALID: 'KILN_1101',
  KEYPAIR_FILE_MISSING: 'KILN_1102',
  // 2xxx: job specs and other payloads
  PAYLOAD_INVALID: 'KILN_2001',
  SPEC_FILE_UNREADABLE: 'KILN_2002',
  // 3xxx: scheduling and lifecycle
  JOB_NOT_FOUND: 'KILN_3001',
  JOB_WRONG_STATE: 'KILN_3002',
  INSUFFICIENT_FUNDS: 'KILN_3003',
  NOT_JOB_OWNER: 'KILN_3004',
  AUTH_REQUIRED: 'KILN_3005',
  // 4xxx: escrow and chain
  ESCROW_NOT_FUNDED: 'KILN_4001',
  ESCROW_WRONG_ACCOUNT: 'KILN_4002',
  ESCROW_TX_REJECTED: 'KILN_4003',
  SETTLEMENT_REFUSED: 'KILN_4004',
  CHAIN_UNREACHABLE: 'KILN_4005',
  BOND_NOT_POSTED: 'KILN_4006',
  // 5xxx: provider runtime
  IMAGE_NOT_FOUND: 'KILN_5001',
  CONTAINER_FAILED: 'KILN_5002',
  CONTAINER_TIMEOUT: 'KILN_5003',
  DOCKER_UNAVAILABLE: 'KILN_5004',
  OUTPUT_TOO_LARGE: 'KILN_5005',
  LEASE_REFUSED: 'KILN_5006',
  NETWORK_UNAVAILABLE: 'KILN_5007',
  PROVIDER_ALREADY_RUNNING: 'KILN_5008',
  /** The lease asks for GPUs this provider cannot give it (count, model, memory, or no NVIDIA runtime). */
  GPU_UNAVAILABLE: 'KILN_5009',
  /** The private registry refused the credentials sealed with the lease. */
  REGISTRY_AUTH_FAILED: 'KILN_5010',
  // 6xxx: artifacts and transport
  ARTIFACT_DIGEST_MISMATCH: 'KILN_6001',
  ARTIFACT_NOT_FOUND: 'KILN_6002',
  STREAM_FRAME_TOO_LARGE: 'KILN_6003',
  PEER_UNREACHABLE: 'KILN_6004',
  /** An input's bytes do not hash to the digest its spec names: the source's fault. */
  INPUT_DIGEST_MISMATCH: 'KILN_6005',
  /** An input's source does not answer, answers 404, or stalls. */
  INPUT_UNAVAILABLE: 'KILN_6006',
  /** An input's source sent more bytes than its spec declares. */
  INPUT_TOO_LARGE: 'KILN_6007',
  /** The provider could not fetch the inputs in time: it gives the job back to be placed elsewhere. */
  INPUT_FETCH_TIMEOUT: 'KILN_6008',
  // 9xxx: configuration
  CONFIG_INVALID: 'KILN_9001',
  INTERNAL_ERROR: 'KILN_9002',
  /** Another live process holds the embedded database's data directory. */
  DATABASE_IN_USE: 'KILN_9003',
  /** The embedded database's files do not open (damaged); the message says how to recover. */
  DATABASE_UNOPENABLE: 'KILN_9004',
} as const

export type KilnErrorName = keyof typeof KilnErrorCode
export type KilnErrorCodeValue = (typeof KilnErrorCode)[KilnErrorName]

/** Structured detail carried by an error; for payload errors, one entry per bad field. */
export interface KilnErrorContext {
  issues?: FieldIssue[]
  [key: string]: unknown
}

/**
 * The context fields that callers branch on, per kind (as @solana/kit's SolanaErrorContext
 * does per code): `isKilnError(e, kind)` narrows `e.context` to the kind's entry, and a
 * throw site that sets one of these fields with the wrong type does not compile. Other
 * fields stay free-form detail for logs and messages.
 */
export interface KilnErrorContextByKind {
  /** `running`: the provider still runs the job, so its result is not there yet. */
  JOB_WRONG_STATE: { running?: true }
  /**
   * `lost`: the provider answered that it has no result for the run; `deadline`: the run's
   * deadline (ms) passed with no result, so it is presumed lost; `timeout`: no frame came in time.
   */
  PEER_UNREACHABLE: { lost?: true; deadline?: number; timeout?: true }
}

/** The context of an error of kind `K`: its typed fields where it has some, free-form otherwise. */
export type KilnErrorContextOf<K extends KilnErrorName> = [K] extends [keyof KilnErrorContextByKind]
  ? KilnErrorContextByKind[K] & KilnErrorContext
  : KilnErrorContext

export interface FieldIssue {
  /** Dotted path of the field, e.g. `resources.memoryMb`. */
  path: string
  /** What was wrong. */
  message: string
  /** What would be accepted, when known. */
  expected?: string
}

export class KilnError<K extends KilnErrorName = KilnErrorName> extends Error {
  override readonly name = 'KilnError'
  readonly code: KilnErrorCodeValue
  readonly kind: K
  readonly context: KilnErrorContextOf<K>

  // Every typed field is optional, so an empty context fits every kind.
  constructor(
    kind: K,
    message: string,
    context: KilnErrorContextOf<K> = {} as KilnErrorContextOf<K>,
    options?: { cause?: unknown },
  ) {
    super(message, options)
    this.kind = kind
    this.code = KilnErrorCode[kind]
    this.context = context
  }

  toJSON(): { code: string; kind: string; message: string; context: KilnErrorContext } {
    return { code: this.code, kind: this.kind, message: this.message, context: this.context }
  }
}

/** Whether `e` is a KilnError (of `kind`, when given: then `e.context` is that kind's). */
export function isKilnError<K extends KilnErrorName>(e: unknown, kind: K): e is KilnError<K>
export function isKilnError(e: unknown): e is KilnError
export function isKilnError(e: unknown, kind?: KilnErrorName): e is KilnError {
  if (typeof e !== 'object' || e === null || (e as { name?: unknown }).name !== 'KilnError') return false
  return kind === undefined || (e as KilnError).kind === kind
}

/** Rebuilds a KilnError from its JSON form (as it crosses the API). */
export function kilnErrorFromJSON(json: unknown): KilnError | undefined {
  if (typeof json !== 'object' || json === null) return undefined
  const j = json as Record<string, unknown>
  if (typeof j.kind !== 'string' || !(j.kind in KilnErrorCode) || typeof j.message !== 'string') return undefined
  return new KilnError(j.kind as KilnErrorName, j.message, (j.context as KilnErrorContext) ?? {})
}

/** One line per issue, readable in a terminal. */
export function formatKilnError(e: KilnError): string {
  const lines = [`${e.code} ${e.message}`]
  for (const i of e.context.issues ?? []) {
    lines.push(`  - ${i.path || '(root)'}: ${i.message}${i.expected ? ` (expected ${i.expected})` : ''}`)
  }
  return lines.join('\n')
}
