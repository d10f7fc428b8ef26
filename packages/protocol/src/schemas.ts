import { z } from 'zod'
import { isAddress, type Address } from './identity.ts'
import { multilineText, plainText } from './text.ts'
import { VerificationSettings } from './verification.ts'

// Money (TOKEN_DECIMALS, base units, how amounts are shown) is in money.ts.

export const address = z
  .string()
  .refine(isAddress, { message: 'not a valid base58 address' })
  .transform((s) => s as Address)
export const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'a lower-case hex sha256 digest (64 characters)')
export const amount = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER)
export const jobId = z.string().regex(/^job_[0-9a-z]{10,40}$/, 'a job id like job_01h...')

/** Docker image reference: [registry/]name[:tag][@sha256:digest]. */
const imageRef = z
  .string()
  .min(1)
  .max(255)
  .regex(
    /^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$/,
    'a Docker image reference such as kiln/matmul:1 or ghcr.io/org/img@sha256:…',
  )

export const GpuRequest = z
  .object({
    count: z.number().int().min(0).max(16).default(0),
    /** Accepted GPU models (substring match, case-insensitive); empty means any. */
    models: z.array(plainText().min(1).max(64)).max(16).default([]),
    minVramMb: z.number().int().min(0).max(1_048_576).default(0),
  })
  .strict()

export const Resources = z
  .object({
    cpu: z.number().positive().max(256).default(1),
    memoryMb: z.number().int().min(16).max(1_048_576).default(512),
    gpu: GpuRequest.default({ count: 0, models: [], minVramMb: 0 }),
  })
  .strict()

export const JobSpec = z
  .object({
    name: plainText().min(1).max(80).optional(),
    image: imageRef,
    command: z.array(multilineText().max(4096)).max(256).optional(),
    env: z
      .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name'), multilineText().max(4096))
      .refine((e) => Object.keys(e).length <= 64, 'at most 64 variables')
      .default({}),
    resources: Resources.default({ cpu: 1, memoryMb: 512, gpu: { count: 0, models: [], minVramMb: 0 } }),
    /** The most the client pays per hour of lease, in token base units. */
    maxPricePerHour: amount.min(1),
    timeoutSec: z
      .number()
      .int()
      .min(1)
      .max(7 * 24 * 3600)
      .default(600),
    /**
     * Outbound internet access (not the provider's host or private ranges). Only providers that
     * advertise `network: true` take such a job; by default none does.
     */
    network: z.boolean().default(false),
    /** 0 (default) to 9: higher runs sooner; within a priority, clients take turns. */
    priority: z.number().int().min(0).max(9).default(0),
    region: plainText().min(1).max(32).optional(),
    /** Only providers whose reputation is at least this (0..1); the marketplace's own floor applies as well. */
    minReputation: z.number().min(0).max(1).optional(),
    outputs: z
      .object({
        maxBytes: z
          .number()
          .int()
          .min(0)
          .max(4 * 1024 ** 3)
          .default(64 * 1024 ** 2),
      })
      .strict()
      .default({ maxBytes: 64 * 1024 ** 2 }),
    /** Spot-check rate, bond and comparator; omitted fields take the marketplace's defaults. */
    verification: VerificationSettings.optional(),
  })
  .strict()
export type JobSpec = z.output<typeof JobSpec>
export type JobSpecInput = z.input<typeof JobSpec>

/** The most a lease can cost: the hourly price over the whole timeout, rounded up. */
export function maxLeaseCost(pricePerHour: number, timeoutSec: number): number {
  return Math.ceil((pricePerHour * timeoutSec) / 3600)
}

/** What a run of `seconds` costs at `pricePerHour`, rounded up, never above the lock. */
export function leaseCost(pricePerHour: number, seconds: number, lockAmount: number): number {
  return Math.min(lockAmount, Math.ceil((pricePerHour * Math.max(0, seconds)) / 3600))
}

export const GpuInfo = z
  .object({
    index: z.number().int().min(0).max(64),
    model: plainText().max(128),
    vramMb: z.number().int().min(0),
    driver: plainText().max(32).optional(),
    cuda: plainText().max(32).optional(),
  })
  .strict()
export type GpuInfo = z.output<typeof GpuInfo>

export const Hardware = z
  .object({
    cpuCores: z.number().int().min(1).max(1024),
    memoryMb: z.number().int().min(1),
    diskMb: z.number().int().min(0),
    gpus: z.array(GpuInfo).max(64),
  })
  .strict()
export type Hardware = z.output<typeof Hardware>

export const CapacityAdvert = z
  .object({
    peerId: plainText().min(1).max(128),
    addrs: z.array(plainText().max(256)).max(16),
    /** Increases with every advert from this provider; older ones are ignored. */
    seq: z.number().int().nonnegative(),
    hardware: Hardware,
    free: z
      .object({
        cpu: z.number().min(0),
        memoryMb: z.number().int().min(0),
        gpus: z.number().int().min(0),
      })
      .strict(),
    pricePerHour: amount,
    region: plainText().max(32),
    version: plainText().max(32),
    available: z.boolean(),
    /** Why the provider is unavailable, when it is. */
    reason: plainText().max(200).optional(),
    /** Who runs this provider, when one operator runs several: their runs never check each other. */
    operator: address.optional(),
    /**
     * Takes jobs whose spec sets `network: true`, on a network that reaches the internet only
     * (not the host, not private ranges). Absent, as in older adverts: it takes none.
     */
    network: z.boolean().optional(),
    /**
     * The largest bond the provider can post now (its stablecoin, in base units): a job whose
     * bond at this provider's price is larger is not matched to it. Absent, as in older
     * adverts: no limit is known.
     */
    maxBond: amount.optional(),
  })
  .strict()
export type CapacityAdvert = z.output<typeof CapacityAdvert>

export const Lease = z
  .object({
    jobId,
    client: address,
    provider: address,
    arbiter: address,
    spec: JobSpec,
    pricePerHour: amount,
    lockAmount: amount,
    mint: address,
    multisig: address,
    vault: address,
    /** Names this lease's vault: the job id and an unguessable placement number. */
    escrowId: plainText().min(1).max(64),
    /** What the provider stakes in the same vault before it runs; lost to the client if caught cheating. */
    bond: amount.default(0),
    /** The marketplace's cut of the work's pay, in basis points. */
    feeBps: z.number().int().min(0).max(10_000).default(0),
    /** The provider must have started by then, or the lease lapses. */
    startBy: z.number().int(),
  })
  .strict()
export type Lease = z.output<typeof Lease>

export const RunStatus = z.enum(['succeeded', 'failed'])
export const ResultReceipt = z
  .object({
    jobId,
    provider: address,
    status: RunStatus,
    exitCode: z.number().int().nullable(),
    error: z
      .object({ code: plainText().max(16), message: multilineText().max(1000) })
      .strict()
      .optional(),
    outputDigest: sha256.nullable(),
    outputBytes: z.number().int().nonnegative(),
    logDigest: sha256,
    logBytes: z.number().int().nonnegative(),
    /**
     * The log digest and bytes cover only what the Docker engine kept of the log: a run
     * recovered after a provider restart is read back from the engine's size-capped log files,
     * which may have dropped its start. Absent: they cover every byte the run printed.
     */
    logPartial: z.boolean().optional(),
    startedAt: z.number().int().nullable(),
    endedAt: z.number().int(),
    containerSeconds: z.number().nonnegative(),
    gpuSeconds: z.number().nonnegative(),
  })
  .strict()
export type ResultReceipt = z.output<typeof ResultReceipt>

/** Envelope kinds; a kind names both the payload schema and who may sign it. */
export const Kind = {
  advert: 'kiln/advert/1',
  lease: 'kiln/lease/1',
  receipt: 'kiln/receipt/1',
  submit: 'kiln/api/submit/1',
  lock: 'kiln/api/lock/1',
  cancel: 'kiln/api/cancel/1',
  settleRequest: 'kiln/settle-request/1',
  cosign: 'kiln/api/cosign/1',
  resultRequest: 'kiln/result-request/1',
  runs: 'kiln/api/runs/1',
  read: 'kiln/api/read/1',
} as const

export const SubmitRequest = z.object({ spec: JobSpec }).strict()
const escrowId = plainText().min(1).max(64)
/** escrowId names which of the job's runs was locked; without it, the job's own (first) run. */
export const LockRequest = z
  .object({ jobId, signature: plainText().min(64).max(100), escrowId: escrowId.optional() })
  .strict()
/** The client asks for every run of its job (re-runs included): only the owner may see them. */
export const RunsRequest = z.object({ jobId }).strict()
export const CancelRequest = z.object({ jobId }).strict()
export const ResultRequest = z.object({ jobId }).strict()

/** The client's co-signature of a refund the provider could not co-sign (it is gone). */
export const CosignRequest = z
  .object({ jobId, transaction: plainText().min(1).max(4096), escrowId: escrowId.optional() })
  .strict()

/** The arbiter asks a party to co-sign a settlement transaction it has already signed. */
export const SettleRequest = z
  .object({
    jobId,
    /** release and refund ask for a co-signature; slash tells the provider of one it was not asked to sign (already sent). */
    action: z.enum(['release', 'refund', 'slash']),
    /** base64 of the partially signed, serialised transaction. */
    transaction: plainText().max(4096),
  })
  .strict()
export type SettleRequest = z.output<typeof SettleRequest>

export const JobState = z.enum([
  'queued',
  'matched',
  'locked',
  'running',
  'verifying',
  'settling',
  'done',
  'failed',
  'cancelled',
  'expired',
])
export type JobState = z.output<typeof JobState>
export const TERMINAL_STATES: readonly JobState[] = ['done', 'failed', 'cancelled', 'expired']

/**
 * Names the vault of one placement of a job: the job id plus the attempt, still a valid job
 * id (letters and digits only), so a job placed twice gets two distinct vaults.
 */
export function escrowIdFor(jobId: string, attempt: number): string {
  return `${jobId}a${attempt}`
}

export function isEscrowIdOf(escrowId: string, jobId: string): boolean {
  return escrowId.startsWith(`${jobId}a`) && /^\d+$/.test(escrowId.slice(jobId.length + 1))
}
