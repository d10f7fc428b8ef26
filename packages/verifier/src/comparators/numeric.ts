import { matchesAny, type NumericComparator } from './config.ts'
import { parseNpy, parseRawFloat32, type FloatArray } from './npy.ts'

export interface NumericDiff {
  equal: boolean
  /** Elements outside tolerance (NaN mismatches included). */
  mismatches: number
  count: number
  maxAbsDiff: number
  /** Index of the first mismatch in C order, or -1. */
  firstMismatch: number
  reason?: string
}

export type Tolerance = Pick<NumericComparator, 'rtol' | 'atol' | 'nan'>

/**
 * numpy.allclose semantics with one deliberate change: the relative term uses the larger
 * magnitude of the two (|a-b| <= atol + rtol * max(|a|, |b|)), so the verdict does not
 * depend on which run happened to be the primary. Infinities match only the same infinity.
 */
export function compareFloatArrays(a: FloatArray, b: FloatArray, tol: Tolerance): NumericDiff {
  const count = a.values.length
  const base = { mismatches: 0, count, maxAbsDiff: 0, firstMismatch: -1 }
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    return { ...base, equal: false, reason: `shapes differ: (${a.shape.join(', ')}) vs (${b.shape.join(', ')})` }
  }
  let mismatches = 0
  let maxAbsDiff = 0
  let firstMismatch = -1
  const av = a.values
  const bv = b.values
  for (let i = 0; i < count; i++) {
    const x = av[i] as number
    const y = bv[i] as number
    if (x === y) continue
    let ok: boolean
    if (Number.isNaN(x) || Number.isNaN(y)) {
      ok = tol.nan === 'equal' && Number.isNaN(x) && Number.isNaN(y)
    } else {
      const d = Math.abs(x - y)
      // Differing infinities give d = Infinity (or NaN for inf - inf, caught by x === y above).
      ok = Number.isFinite(d) && d <= tol.atol + tol.rtol * Math.max(Math.abs(x), Math.abs(y))
      if (Number.isFinite(d) && d > maxAbsDiff) maxAbsDiff = d
      if (!Number.isFinite(d)) maxAbsDiff = Infinity
    }
    if (!ok) {
      if (firstMismatch < 0) firstMismatch = i
      mismatches++
    }
  }
  const equal = mismatches === 0
  return {
    equal,
    mismatches,
    count,
    maxAbsDiff,
    firstMismatch,
    ...(equal ? {} : { reason: `${mismatches} of ${count} values outside tolerance (max |a-b| ${maxAbsDiff})` }),
  }
}

/** How a selected numeric file is read: by its `.npy` header, as raw float32, or not at all. */
export function numericFormat(path: string, cfg: Pick<NumericComparator, 'raw'>): 'npy' | 'raw' | undefined {
  if (path.toLowerCase().endsWith('.npy')) return 'npy'
  if (matchesAny(path, cfg.raw)) return 'raw'
  return undefined
}

export function readFloatFile(bytes: Uint8Array, format: 'npy' | 'raw', path: string): FloatArray {
  return format === 'npy' ? parseNpy(bytes, path) : parseRawFloat32(bytes, path)
}
