import { z } from 'zod'
import { plainText } from './text.ts'

/**
 * Which output files a comparator looks at: glob patterns over the archive's paths
 * (`*` within a segment, `**` across segments, `?` one character). Unselected files are
 * not compared at all, so a spec should only leave out files that legitimately differ
 * between honest runs (timings, host names).
 */
const files = z.array(plainText().min(1).max(256)).min(1).max(64)

export const ExactComparator = z
  .object({
    kind: z.literal('exact'),
    files: files.optional(),
  })
  .strict()

export const NumericComparator = z
  .object({
    kind: z.literal('numeric'),
    /** Relative tolerance, as numpy.allclose's rtol. */
    rtol: z.number().min(0).max(1).default(1e-5),
    /** Absolute tolerance, as numpy.allclose's atol. */
    atol: z.number().min(0).default(1e-8),
    /** 'equal': NaN matches NaN at the same index (numpy's equal_nan=True); 'differ': any NaN is a mismatch. */
    nan: z.enum(['equal', 'differ']).default('equal'),
    files: files.optional(),
    /** Selected files to read as raw little-endian float32 (no header); `.npy` files are read by their header. */
    raw: files.default(['**/*.f32']),
  })
  .strict()

export const ImageComparator = z
  .object({
    kind: z.literal('image'),
    /** Peak signal-to-noise ratio in dB over all colour channels; identical images are +Infinity. */
    minPsnr: z.number().min(0).max(200).optional(),
    /** Mean structural similarity on luma, in [-1, 1]; identical images are 1. */
    minSsim: z.number().min(-1).max(1).optional(),
    files: files.optional(),
  })
  .strict()

/** Named in a job's verification settings: how two runs' outputs are judged the same. */
export const ComparatorConfig = z.discriminatedUnion('kind', [ExactComparator, NumericComparator, ImageComparator])
export type ComparatorConfig = z.output<typeof ComparatorConfig>
export type ComparatorConfigInput = z.input<typeof ComparatorConfig>
export type NumericComparator = z.output<typeof NumericComparator>
export type ImageComparator = z.output<typeof ImageComparator>

/**
 * A job's verification settings, part of its spec: how often a second provider re-runs
 * it, what the provider stakes, and how two results are judged the same. Each omitted
 * field falls back to the marketplace default.
 */
export const VerificationSettings = z
  .object({
    /** Spot-check probability: the chance that an independent provider re-runs this job. */
    p: z.number().min(0).max(1).optional(),
    /** The provider's bond per run, in token base units. */
    bondPerJob: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional(),
    /** Or the bond as a multiple of the run's maximum cost (its escrow lock). */
    bondRatio: z.number().min(0).max(100).optional(),
    comparator: ComparatorConfig.default({ kind: 'exact' }),
  })
  .strict()
  .refine((v) => v.bondPerJob === undefined || v.bondRatio === undefined, {
    message: 'give bondPerJob or bondRatio, not both',
    path: ['bondRatio'],
  })
export type VerificationSettings = z.output<typeof VerificationSettings>
export type VerificationSettingsInput = z.input<typeof VerificationSettings>
