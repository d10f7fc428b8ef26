import {
  bigint,
  bigserial,
  boolean,
  doublePrecision,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
} from 'drizzle-orm/pg-core'
import type { CapacityAdvert, Envelope, JobSpec, ResultReceipt } from '@kiln/protocol'

// Times are epoch milliseconds in bigint columns (mode 'number'): exact, and cheap to compare.
const ms = (name: string) => bigint(name, { mode: 'number' })

export interface JobError {
  code: string
  kind: string
  message: string
}

export interface PendingCosign {
  /** base64 transaction, signed by the arbiter, waiting for the client. */
  transaction: string
  /** refund: the provider could not co-sign; slash: the provider would not (its bond goes to the client). */
  action: 'refund' | 'slash'
  toClient: number
  builtAt: number
}

/** What the independent runs of a spot-checked job showed (kept on the job's own row). */
export interface JobVerdict {
  verdict: 'unchecked' | 'agree' | 'decided' | 'inconclusive'
  runs: number
  caught: string[]
  /** The output the majority agreed on, when it is not the job's own run's. */
  reason?: string
  at: number
}

export const jobs = pgTable(
  'jobs',
  {
    id: text('id').primaryKey(),
    client: text('client').notNull(),
    spec: jsonb('spec').$type<JobSpec>().notNull(),
    /** The client's signed submit envelope, kept as proof of what was asked. */
    submitEnvelope: jsonb('submit_envelope').$type<Envelope>().notNull(),
    state: text('state').notNull(),
    /** Bumped on every transition; lets a writer detect it lost a race. */
    version: integer('version').notNull().default(0),
    attempt: integer('attempt').notNull().default(0),
    provider: text('provider'),
    pricePerHour: bigint('price_per_hour', { mode: 'number' }),
    lockAmount: bigint('lock_amount', { mode: 'number' }),
    maxCost: bigint('max_cost', { mode: 'number' }).notNull(),
    vault: text('vault'),
    multisig: text('multisig'),
    lockSignature: text('lock_signature'),
    lockDeadline: ms('lock_deadline'),
    receipt: jsonb('receipt').$type<Envelope<ResultReceipt>>(),
    outputDigest: text('output_digest'),
    outputBytes: bigint('output_bytes', { mode: 'number' }),
    paidToProvider: bigint('paid_to_provider', { mode: 'number' }),
    refundedToClient: bigint('refunded_to_client', { mode: 'number' }),
    /** What settlement owes once the run is over: pay the provider or refund the client. */
    settleAction: text('settle_action'),
    settlementSignature: text('settlement_signature'),
    error: jsonb('error').$type<JobError>(),
    /** Providers this job must not be placed on again (they failed or lost it). */
    excluded: jsonb('excluded').$type<string[]>().notNull().default([]),
    /** After this, a locked or running job with no result is given up on and refunded. */
    runDeadline: ms('run_deadline'),
    /** A settlement waiting for the client's co-signature (when the provider cannot give one). */
    pendingCosign: jsonb('pending_cosign').$type<PendingCosign>(),
    priority: integer('priority').notNull().default(0),
    /** The client asked to cancel; the run is stopped and the job ends `cancelled` after settling. */
    cancelRequestedAt: ms('cancel_requested_at'),
    createdAt: ms('created_at').notNull(),
    updatedAt: ms('updated_at').notNull(),
    startedAt: ms('started_at'),
    endedAt: ms('ended_at'),
    /**
     * A spot-check re-run or tie-break of job parentId: a run of its own (placement, vault,
     * lease, settlement) that is never listed publicly; its lease names the parent's id.
     */
    parentId: text('parent_id'),
    role: text('role').$type<'primary' | 'replica' | 'tiebreak'>().notNull().default('primary'),
    /** Decided at submit from a secret the providers never see; never shown while the job runs. */
    spotCheck: boolean('spot_check').notNull().default(false),
    /** The provider's bond in this run's vault, and the marketplace fee rate and amount. */
    bond: bigint('bond', { mode: 'number' }),
    feeBps: integer('fee_bps'),
    fee: bigint('fee', { mode: 'number' }),
    /** The settlement outcome decided for this run (planSettlement's). */
    settleOutcome: text('settle_outcome'),
    verdict: jsonb('verdict').$type<JobVerdict>(),
    /** Lock windows in a row that closed without the client's lock; a lock starts the count again. */
    lapses: integer('lapses').notNull().default(0),
    /**
     * Set when the job stopped being placed after too many lapses: it stays queued, waiting for
     * its owner to come back (a signed read by `kiln watch`), which clears it.
     */
    parkedAt: ms('parked_at'),
  },
  (t) => [
    index('jobs_state_idx').on(t.state),
    index('jobs_client_idx').on(t.client),
    index('jobs_parent_idx').on(t.parentId),
  ],
)

export const jobEvents = pgTable(
  'job_events',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    jobId: text('job_id').notNull(),
    from: text('from_state'),
    to: text('to_state').notNull(),
    reason: text('reason').notNull(),
    detail: jsonb('detail').$type<Record<string, unknown>>(),
    at: ms('at').notNull(),
  },
  (t) => [index('job_events_job_idx').on(t.jobId)],
)

export const jobLogs = pgTable(
  'job_logs',
  {
    jobId: text('job_id').notNull(),
    seq: integer('seq').notNull(),
    stream: text('stream').notNull(),
    text: text('text').notNull(),
    at: ms('at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.jobId, t.seq] })],
)

export const providers = pgTable('providers', {
  address: text('address').primaryKey(),
  advert: jsonb('advert').$type<CapacityAdvert>().notNull(),
  firstSeen: ms('first_seen').notNull(),
  lastSeen: ms('last_seen').notNull(),
  expiresAt: ms('expires_at').notNull(),
  jobsDone: integer('jobs_done').notNull().default(0),
  jobsFailed: integer('jobs_failed').notNull().default(0),
  earned: bigint('earned', { mode: 'number' }).notNull().default(0),
  containerSeconds: doublePrecision('container_seconds').notNull().default(0),
  /** Decayed evidence from signed receipts (the verifier's ReputationState). */
  reputation: jsonb('reputation').$type<Record<string, unknown>>(),
})

export const settlements = pgTable(
  'settlements',
  {
    jobId: text('job_id').notNull(),
    attempt: integer('attempt').notNull().default(1),
    action: text('action').notNull(),
    signature: text('signature').notNull(),
    toProvider: bigint('to_provider', { mode: 'number' }).notNull(),
    toClient: bigint('to_client', { mode: 'number' }).notNull(),
    at: ms('at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.jobId, t.attempt, t.action] })],
)

/**
 * Nonces of signed API requests, kept until their envelope expires: a request replayed after
 * a restart, or to another coordinator on the same database, finds its row and is refused.
 */
export const usedNonces = pgTable(
  'used_nonces',
  {
    signer: text('signer').notNull(),
    nonce: text('nonce').notNull(),
    expiresAt: ms('expires_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.signer, t.nonce] }), index('used_nonces_expires_idx').on(t.expiresAt)],
)

/**
 * Who uploaded which blob to the marketplace's store (apps/marketplace/src/blobs). A client
 * may name, fetch or ask about only the blobs it uploaded itself: the bytes are stored once,
 * but each client that holds them uploaded them, so a row here proves that client had them.
 */
export const blobOwners = pgTable(
  'blob_owners',
  {
    sha256: text('sha256').notNull(),
    client: text('client').notNull(),
    size: bigint('size', { mode: 'number' }).notNull(),
    createdAt: ms('created_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.client, t.sha256] }), index('blob_owners_sha256_idx').on(t.sha256)],
)
