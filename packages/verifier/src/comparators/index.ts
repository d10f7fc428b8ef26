import { isKilnError, parseOrThrow, sha256Hex } from '@kiln/protocol'
import { ComparatorConfig, matchesAny, type ComparatorConfigInput } from './config.ts'
import { compareImages, decodeImage, isImagePath } from './image.ts'
import { compareFloatArrays, numericFormat, readFloatFile } from './numeric.ts'
import { readTarFiles } from './tar.ts'

export interface FileComparison {
  path: string
  equal: boolean
  reason?: string
  /** What was measured: maxAbsDiff and mismatches for numbers, psnr and ssim for images. */
  metrics?: Record<string, number>
}

/** The outcome of comparing two runs' outputs: a value, never an exception, whatever the outputs hold. */
export interface Comparison {
  equal: boolean
  comparator: ComparatorConfig['kind']
  files: FileComparison[]
  reason?: string
}

/**
 * Compares two output archives (canonical tars) with a job's comparator. Identical bytes
 * always agree. A selected file present in only one archive, unreadable, or in a format the
 * comparator cannot read (and not byte-identical) is a difference: an honest majority
 * still agrees by bytes or by value, so a cheater cannot escape by writing garbage.
 * Throws only for a bad comparator config.
 */
export async function compareOutputs(config: ComparatorConfigInput, a: Uint8Array, b: Uint8Array): Promise<Comparison> {
  const cfg = parseOrThrow(ComparatorConfig, config, 'comparator')
  const base = { comparator: cfg.kind, files: [] as FileComparison[] }
  if (
    Buffer.compare(
      Buffer.from(a.buffer, a.byteOffset, a.byteLength),
      Buffer.from(b.buffer, b.byteOffset, b.byteLength),
    ) === 0
  )
    return { ...base, equal: true }
  if (cfg.kind === 'exact' && cfg.files === undefined) {
    return { ...base, equal: false, reason: `output digests differ: ${sha256Hex(a)} vs ${sha256Hex(b)}` }
  }
  const [fa, fb] = await Promise.all([
    readTarFiles(a).catch((e: unknown) => e),
    readTarFiles(b).catch((e: unknown) => e),
  ])
  if (!(fa instanceof Map) || !(fb instanceof Map)) {
    const bad = [fa, fb]
      .map((f, i) => (f instanceof Map ? undefined : `${i === 0 ? 'first' : 'second'}: ${(f as Error).message}`))
      .filter(Boolean)
    return { ...base, equal: false, reason: `unreadable output archive (${bad.join('; ')})` }
  }
  const paths = [...new Set([...fa.keys(), ...fb.keys()])].filter((p) => matchesAny(p, cfg.files)).sort()
  const files = paths.map((path) => compareFile(cfg, path, fa.get(path), fb.get(path)))
  const differing = files.filter((f) => !f.equal)
  return {
    ...base,
    files,
    equal: differing.length === 0,
    ...(differing.length ? { reason: differing.map((f) => `${f.path}: ${f.reason ?? 'differs'}`).join('; ') } : {}),
  }
}

function compareFile(
  cfg: ComparatorConfig,
  path: string,
  a: Buffer | undefined,
  b: Buffer | undefined,
): FileComparison {
  if (!a || !b) return { path, equal: false, reason: `only in the ${a ? 'first' : 'second'} output` }
  if (a.equals(b)) return { path, equal: true }
  try {
    if (cfg.kind === 'numeric') {
      const format = numericFormat(path, cfg)
      if (format) {
        const d = compareFloatArrays(readFloatFile(a, format, path), readFloatFile(b, format, path), cfg)
        return {
          path,
          equal: d.equal,
          metrics: { mismatches: d.mismatches, count: d.count, maxAbsDiff: d.maxAbsDiff },
          ...(d.reason ? { reason: d.reason } : {}),
        }
      }
    } else if (cfg.kind === 'image' && isImagePath(path)) {
      const d = compareImages(decodeImage(a, path), decodeImage(b, path), cfg)
      return {
        path,
        equal: d.equal,
        metrics: { psnr: d.psnr, ...(d.ssim === undefined ? {} : { ssim: d.ssim }) },
        ...(d.reason ? { reason: d.reason } : {}),
      }
    }
  } catch (e) {
    if (!isKilnError(e)) throw e
    return { path, equal: false, reason: e.message }
  }
  return {
    path,
    equal: false,
    reason:
      cfg.kind === 'exact'
        ? 'content differs'
        : `content differs, and the ${cfg.kind} comparator does not read this file (compared byte for byte)`,
  }
}

export { ComparatorConfig, DEFAULT_MIN_PSNR, globToRegExp, type ComparatorConfigInput } from './config.ts'
export { compareFloatArrays, type NumericDiff, type Tolerance } from './numeric.ts'
export { parseNpy, parseRawFloat32, type FloatArray } from './npy.ts'
export { decodePng, decodePpm, type Image } from './png.ts'
export { compareImages, decodeImage, psnr, ssim, type ImageDiff } from './image.ts'
export { readTarFiles } from './tar.ts'
