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

/** Where a job's inputs are mounted (read-only): `/in/<name>` unless the spec names another path under it. */
export const INPUT_MOUNT_ROOT = '/in'
export const MAX_INPUTS = 32
export const MAX_SECRETS = 32
/** The largest input a spec may declare (1 TiB); a provider's own limits may be lower. */
export const MAX_INPUT_BYTES = 1024 ** 4

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'an environment variable name (letters, digits, _)')
const inputName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'a name of letters, digits, dot, dash or underscore (at most 64)')

/**
 * Where an input's bytes come from:
 * - `upload`: the marketplace's blob store, where the client put them (`kiln submit` uploads
 *   the local files a spec names and fills in the digest);
 * - an `https://` URL the provider fetches itself;
 * - `job:<id>` (the whole output of another of the client's jobs, as a folder) or
 *   `job:<id>/out/<path>` (one file of it): the marketplace fills in the digest at submit.
 */
export const InputSource = z.union([
  z.literal('upload'),
  plainText()
    .max(2048)
    .regex(/^https:\/\/[^\s]+$/, 'an https:// URL'),
  plainText()
    .max(600)
    .regex(/^job:job_[0-9a-z]{10,40}(\/out(\/[^\s]+)?)?$/, 'job:<id> or job:<id>/out/<path>'),
])
export type InputSource = z.output<typeof InputSource>

/** A mount path under /in: absolute, no `.` or `..` segments, no doubled or trailing slash. */
const inputMount = plainText()
  .max(255)
  .refine(
    (m) =>
      m.startsWith(`${INPUT_MOUNT_ROOT}/`) &&
      m
        .slice(INPUT_MOUNT_ROOT.length + 1)
        .split('/')
        .every((seg) => seg !== '' && seg !== '.' && seg !== '..'),
    { message: `a path under ${INPUT_MOUNT_ROOT}/, such as ${INPUT_MOUNT_ROOT}/weights` },
  )

export const JobInput = z
  .object({
    name: inputName,
    source: InputSource,
    /** The digest of the bytes (of the canonical archive, for a folder). Required unless the source is job:. */
    sha256: sha256.optional(),
    /** Bytes (of the archive, for a folder). Required unless the source is job:. */
    size: z.number().int().min(0).max(MAX_INPUT_BYTES).optional(),
    /** `file` is mounted as one file; `dir` travels as a canonical archive and is mounted as a folder. */
    kind: z.enum(['file', 'dir']).default('file'),
    /** Read-only mount point in the container; default `/in/<name>`. */
    mount: inputMount.optional(),
  })
  .strict()
export type JobInput = z.output<typeof JobInput>
export type JobInputSpec = z.input<typeof JobInput>

/** Where an input appears in the container. */
export const inputMountOf = (input: Pick<JobInput, 'name' | 'mount'>): string =>
  input.mount ?? `${INPUT_MOUNT_ROOT}/${input.name}`

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
    /** Content-addressed inputs, fetched and checked by the provider, mounted read-only. */
    inputs: z.array(JobInput).max(MAX_INPUTS).default([]),
    /**
     * The names of the job's secrets. Their values never reach the marketplace: the client seals
     * them to the matched provider with its lock (`sealSecrets`), and the container gets them as env.
     */
    secrets: z.array(envName).max(MAX_SECRETS).default([]),
    /** The image is in a private registry: the client's sealed secrets carry the credentials for its pull. */
    privateImage: z.boolean().default(false),
    /**
     * How placement weighs what providers hold already: a provider with the job's image and
     * inputs cached is preferred while its price is at most `cacheTolerance` (a fraction, 0.2 =
     * 20%) above the cheapest fitting provider's. 0 turns the preference off.
     */
    placement: z
      .object({ cacheTolerance: z.number().min(0).max(10).default(0.2) })
      .strict()
      .default({ cacheTolerance: 0.2 }),
  })
  .strict()
  .superRefine((spec, ctx) => {
    const names = new Set<string>()
    const mounts = new Set<string>()
    spec.inputs.forEach((input, i) => {
      if (names.has(input.name))
        ctx.addIssue({
          code: 'custom',
          path: ['inputs', i, 'name'],
          message: `a second input named ${input.name}; names must be unique`,
        })
      names.add(input.name)
      const mount = inputMountOf(input)
      if (mounts.has(mount) || [...mounts].some((m) => mount.startsWith(`${m}/`) || m.startsWith(`${mount}/`)))
        ctx.addIssue({
          code: 'custom',
          path: ['inputs', i, 'mount'],
          message: `${mount} overlaps another input's mount`,
        })
      mounts.add(mount)
      if (!input.source.startsWith('job:')) {
        if (input.sha256 === undefined)
          ctx.addIssue({
            code: 'custom',
            path: ['inputs', i, 'sha256'],
            message: `required for a source of ${input.source === 'upload' ? 'upload' : 'https'}`,
          })
        if (input.size === undefined)
          ctx.addIssue({
            code: 'custom',
            path: ['inputs', i, 'size'],
            message: `required for a source of ${input.source === 'upload' ? 'upload' : 'https'}`,
          })
      }
    })
    const seen = new Set<string>()
    spec.secrets.forEach((name, i) => {
      if (seen.has(name)) ctx.addIssue({ code: 'custom', path: ['secrets', i], message: `${name} is named twice` })
      seen.add(name)
      if (name in spec.env)
        ctx.addIssue({
          code: 'custom',
          path: ['secrets', i],
          message: `${name} is also in env; a variable is either plain or secret`,
        })
    })
  })
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

export const MAX_ADVERT_CACHED_IMAGES = 64
export const MAX_ADVERT_CACHED_INPUTS = 256

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
    /**
     * What the provider holds already (bounded samples, most recently used first): image
     * references and input digests. The matching engine prefers a provider that holds a job's
     * image and inputs, within the client's price tolerance.
     */
    cache: z
      .object({
        images: z.array(plainText().max(255)).max(MAX_ADVERT_CACHED_IMAGES).default([]),
        inputs: z.array(sha256).max(MAX_ADVERT_CACHED_INPUTS).default([]),
      })
      .strict()
      .optional(),
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
    /**
     * The client's sealed secrets for this lease (an envelope of kind `kiln/secrets/1` signed by
     * the client, its box sealed to this provider): the arbiter relays it, and cannot read it.
     */
    secrets: z.unknown().optional(),
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
  secrets: 'kiln/secrets/1',
  blobRequest: 'kiln/blob-request/1',
} as const

export const SubmitRequest = z.object({ spec: JobSpec }).strict()
const escrowId = plainText().min(1).max(64)
/** escrowId names which of the job's runs was locked; without it, the job's own (first) run. */
export const LockRequest = z
  .object({
    jobId,
    signature: plainText().min(64).max(100),
    escrowId: escrowId.optional(),
    /** The sealed secrets for this placement's provider (a `kiln/secrets/1` envelope), when the spec names any. */
    secrets: z.unknown().optional(),
  })
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
