import type { CapacityAdvert, Envelope, JobSpec, JobState, ResultReceipt, TokenUnit } from '@kiln/protocol'

/**
 * Where a settled run's money went, in token base units: the one definition the CLI, the SDK
 * and the web app show. The client paid `work` for the seconds run, of which `fee` went to the
 * marketplace and the rest to the provider; the provider's bond came back or was slashed to the
 * client; `refunded` is what came back of the client's lock.
 */
export interface SettlementMoney {
  work: number
  fee: number
  /** The provider's pay for the work: work - fee. */
  toProviderForWork: number
  bondReturned: number
  bondSlashed: number
  refunded: number
  signature: string
}

/** What the independent runs of a spot-checked job showed. */
export interface VerdictView {
  verdict: 'unchecked' | 'agree' | 'decided' | 'inconclusive'
  runs: number
  caught: string[]
  /** The output the majority agreed on, when it is not the job's own run's (the owner's to see). */
  reason?: string
  at: number
}

/** Why a job failed: a stable code, and a message that may quote the job's own output. */
export interface JobErrorView {
  code: string
  kind: string
  message: string
}

/** What a market explorer may see of a job: never its env, command, name, logs, output digests or escrow details. */
export interface PublicJobView {
  id: string
  state: JobState
  client: string
  provider: string | null
  image: string
  resources: JobSpec['resources']
  maxPricePerHour: number
  pricePerHour: number | null
  createdAt: number
  startedAt: number | null
  endedAt: number | null
  /** A failure's stable code, without its message (which may quote the job's own output). */
  errorCode: string | null
  settlement: SettlementMoney | null
  /** What independent re-runs showed; only once the job has ended. The reason (it may name the output) is the owner's. */
  verification: Omit<VerdictView, 'reason'> | null
}

/** Where a run's funds are locked: the vault, its multisig and the lock the client signs. */
export interface LockView {
  escrowId: string
  vault: string
  multisig: string
  mint: string
  amount: number
  deadline: number | null
  provider: string
  arbiter: string
}

/** A settlement waiting for the client's co-signature: a refund the provider could not sign, or a slash. */
export interface PendingCosignView {
  transaction: string
  toClient: number
  action: 'refund' | 'slash'
}

/** Everything about a job, for its owner only. */
export interface JobView extends Omit<PublicJobView, 'errorCode' | 'verification'> {
  verification: VerdictView | null
  name: string | null
  spec: JobSpec
  maxCost: number
  lock: LockView | null
  lockSignature: string | null
  outputDigest: string | null
  outputBytes: number | null
  /** The provider's whole payout (work pay + its bond back) and the client's (refund + slashed bond), as sent. */
  paidToProvider: number | null
  refundedToClient: number | null
  settlementSignature: string | null
  error: JobErrorView | null
  waiting: string | null
  updatedAt: number
  receipt: Envelope<ResultReceipt> | null
  /** For a queued job: its place in the fair order (1 = next) and a rough wait. */
  queuePosition: number | null
  estimatedWaitMs: number | null
  pendingCosign: PendingCosignView | null
  /** Once settling: how the run ended for money (a SettlementOutcome) and what the vault does (release, refund, refund_requeue, slash). */
  settleOutcome: string | null
  settleAction: string | null
  attempt: number
  /** The provider's bond and the marketplace fee of this run (fee once settled). */
  bond: number | null
  fee: number | null
}

/** One run of a job as its owner sees it: its own run, and any re-run or tie-break. */
export interface RunView {
  id: string
  role: 'primary' | 'replica' | 'tiebreak'
  state: JobState
  provider: string | null
  lock: LockView | null
  lockSignature: string | null
  outputDigest: string | null
  settleOutcome: string | null
  paidToProvider: number | null
  refundedToClient: number | null
  bond: number | null
  fee: number | null
  settlementSignature: string | null
  settlement: SettlementMoney | null
  pendingCosign: PendingCosignView | null
}

/** A state change of a job, as its owner sees it. */
export interface JobEventView {
  from: string | null
  to: string
  reason: string
  at: number
}

/** The owner's whole view of its job, with its history. */
export interface JobDetailsView extends JobView {
  events: JobEventView[]
}

/** One job as a market explorer sees it, with its timeline: times only, no reasons (they may quote the job). */
export interface PublicJobDetailsView extends PublicJobView {
  events: Omit<JobEventView, 'reason'>[]
}

/** A line a job printed. */
export interface LogLineView {
  seq: number
  stream: 'stdout' | 'stderr'
  text: string
  at: number
}

/** A provider online now, from its signed advert, with the marketplace's view of it. */
export interface ProviderView {
  address: string
  region: string
  pricePerHour: number
  available: boolean
  reason: string | null
  hardware: CapacityAdvert['hardware']
  free: CapacityAdvert['free']
  version: string
  lastSeen: number
  expiresAt: number
  reputation: number
  /** Takes jobs that ask for network access (internet only); older adverts do not say, and take none. */
  network: boolean
  /** Below the marketplace's reputation floor: online, but given no work. */
  suspended: boolean
}

/** What a client needs to talk to this marketplace: arbiter, mint, ledger, mesh. */
export interface NetworkInfo {
  arbiter: string
  mint: string
  rpcUrl: string
  meshAddrs: string[]
  version: string
  /** The mint's unit: every amount a client shows is named with it. */
  token: TokenUnit
  /** Defaults for jobs whose spec leaves them out, and the fee: what a quote needs. */
  verification: { p: number; bondRatio: number }
  feeBps: number
  /** Providers below this reputation get no work. */
  minReputation: number
}

/** A job accepted: its id, and the most one run of it can cost. */
export interface SubmittedView {
  jobId: string
  maxCost: number
}
