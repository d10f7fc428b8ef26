import { z } from 'zod'
import { sha256 } from './schemas.ts'

/** Stream protocols spoken over the mesh. The version is part of the name. */
export const Protocol = {
  /** Coordinator → provider: a lease; provider → coordinator: progress, logs, output, receipt. */
  job: '/kiln/job/1.0.0',
  /** Coordinator → provider: co-sign this settlement. */
  settle: '/kiln/settle/1.0.0',
  /**
   * Coordinator → provider: the result of a run whose job stream was lost (the coordinator
   * restarted). Answered like the end of a job stream: output and receipt, or running / lost.
   */
  result: '/kiln/result/1.0.0',
  /**
   * Provider → marketplace: the bytes of an uploaded input (or another job's output) that a
   * lease it holds names. Request: a `kiln/blob-request/1` envelope signed by the provider;
   * answer: a `blob` frame and raw chunks, or an `error` frame.
   */
  blob: '/kiln/blob/1.0.0',
} as const

/** What a provider asks the blob protocol for: one digest its lease `escrowId` names, from `offset`. */
export const BlobRequest = z
  .object({
    jobId: z.string().regex(/^job_[0-9a-z]{10,40}$/),
    escrowId: z.string().min(1).max(64),
    sha256,
    offset: z.number().int().nonnegative().default(0),
  })
  .strict()
export type BlobRequest = z.output<typeof BlobRequest>

export const BlobFrame = z.discriminatedUnion('t', [
  /** `bytes` chunks of raw data follow (from the request's offset to the end), in `chunks` messages. */
  z
    .object({
      t: z.literal('blob'),
      size: z.number().int().nonnegative(),
      bytes: z.number().int().nonnegative(),
      chunks: z.number().int().nonnegative(),
    })
    .strict(),
  z
    .object({
      t: z.literal('error'),
      error: z.object({ code: z.string().max(16), kind: z.string().max(64), message: z.string().max(2000) }).strict(),
    })
    .strict(),
])
export type BlobFrame = z.output<typeof BlobFrame>

export const OUTPUT_CHUNK_BYTES = 256 * 1024

const errorInfo = z
  .object({ code: z.string().max(16), kind: z.string().max(64), message: z.string().max(2000) })
  .strict()
export type WireError = z.output<typeof errorInfo>

/**
 * Frames of the job protocol, all JSON except the raw output chunks that follow an `output`
 * frame. Order from the provider: accepted | refused, started?, log*, output? (+ chunks), receipt.
 */
export const ProviderFrame = z.discriminatedUnion('t', [
  z.object({ t: z.literal('accepted') }).strict(),
  z.object({ t: z.literal('refused'), error: errorInfo }).strict(),
  /**
   * Before the container starts: pulling the image or fetching inputs (bytes so far of `total`,
   * when known). Not billed: billing starts at `started`.
   */
  z
    .object({
      t: z.literal('preparing'),
      phase: z.enum(['pulling', 'fetching']),
      done: z.number().nonnegative(),
      total: z.number().nonnegative().nullable(),
    })
    .strict(),
  z.object({ t: z.literal('started'), at: z.number().int() }).strict(),
  z
    .object({
      t: z.literal('log'),
      seq: z.number().int().nonnegative(),
      chunks: z
        .array(z.object({ stream: z.enum(['stdout', 'stderr']), text: z.string().max(64 * 1024) }).strict())
        .max(64),
    })
    .strict(),
  z
    .object({
      t: z.literal('output'),
      bytes: z.number().int().nonnegative(),
      digest: sha256,
      chunks: z.number().int().nonnegative(),
    })
    .strict(),
  z.object({ t: z.literal('receipt'), envelope: z.unknown() }).strict(),
  /** Result protocol only: the run is not over yet. */
  z.object({ t: z.literal('running') }).strict(),
  /** Result protocol only: the provider has no result for this job and never will. */
  z.object({ t: z.literal('lost'), error: errorInfo }).strict(),
])
export type ProviderFrame = z.output<typeof ProviderFrame>

export const CoordinatorFrame = z.discriminatedUnion('t', [
  z.object({ t: z.literal('lease'), envelope: z.unknown() }).strict(),
  z.object({ t: z.literal('ack') }).strict(),
  z.object({ t: z.literal('cancel') }).strict(),
])
export type CoordinatorFrame = z.output<typeof CoordinatorFrame>

export const SettleReply = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true), transaction: z.string().max(4096) }).strict(),
  z.object({ ok: z.literal(false), error: errorInfo }).strict(),
])
export type SettleReply = z.output<typeof SettleReply>
