import { KilnError } from '@kiln/protocol'
import { DEFAULT_MIN_PSNR, type ImageComparator } from './config.ts'
import { decodePng, decodePpm, type Image } from './png.ts'

export interface ImageDiff {
  equal: boolean
  psnr: number
  /** Only computed when the comparator asks for it. */
  ssim?: number
  reason?: string
}

/** Picks the decoder by content, so a renamed file is still read as what it is. */
export function decodeImage(bytes: Uint8Array, what = 'image'): Image {
  if (bytes[0] === 0x89 && bytes[1] === 0x50) return decodePng(bytes, what)
  if (bytes[0] === 0x50 && bytes[1] === 0x36) return decodePpm(bytes, what)
  throw new KilnError('PAYLOAD_INVALID', `${what}: not a PNG or binary PPM (P6) image`, {
    reason: 'unknown image format',
  })
}

export function isImagePath(path: string): boolean {
  return /\.(png|ppm)$/i.test(path)
}

/** Sample `c` (0 R, 1 G, 2 B, 3 A) of pixel `i`, with gray spread to RGB and opaque alpha filled in. */
function sample(img: Image, i: number, c: number): number {
  const d = img.data
  const o = i * img.channels
  switch (img.channels) {
    case 1:
      return c === 3 ? 255 : (d[o] as number)
    case 2:
      return c === 3 ? (d[o + 1] as number) : (d[o] as number)
    case 3:
      return c === 3 ? 255 : (d[o + c] as number)
    case 4:
      return d[o + c] as number
  }
}

const hasAlpha = (img: Image): boolean => img.channels === 2 || img.channels === 4

/** PSNR in dB over R, G, B (and A when either image has alpha); +Infinity when identical. */
export function psnr(a: Image, b: Image): number {
  const n = a.width * a.height
  const channels = hasAlpha(a) || hasAlpha(b) ? 4 : 3
  let sum = 0
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < channels; c++) {
      const d = sample(a, i, c) - sample(b, i, c)
      sum += d * d
    }
  }
  const mse = sum / (n * channels)
  return mse === 0 ? Infinity : 10 * Math.log10((255 * 255) / mse)
}

/** BT.601 luma; colour renders are compared on structure, where the eye is most sensitive. */
function luma(img: Image): Float64Array {
  const n = img.width * img.height
  const out = new Float64Array(n)
  for (let i = 0; i < n; i++) {
    out[i] =
      img.channels <= 2
        ? sample(img, i, 0)
        : 0.299 * sample(img, i, 0) + 0.587 * sample(img, i, 1) + 0.114 * sample(img, i, 2)
  }
  return out
}

const C1 = (0.01 * 255) ** 2
const C2 = (0.03 * 255) ** 2

/** Window origins along one axis: every `step`, plus the last window flush with the edge. */
function origins(size: number, win: number, step: number): number[] {
  const out: number[] = []
  for (let o = 0; o + win <= size; o += step) out.push(o)
  if (out[out.length - 1] !== size - win) out.push(size - win)
  return out
}

/**
 * Mean SSIM (Wang et al. 2004) on luma over 8x8 windows every 4 pixels (the whole image
 * when smaller), with the usual constants for 8-bit data. 1 means identical.
 */
export function ssim(a: Image, b: Image, window = 8, step = 4): number {
  const la = luma(a)
  const lb = luma(b)
  const w = a.width
  const wx = Math.min(window, a.width)
  const wy = Math.min(window, a.height)
  const n = wx * wy
  let total = 0
  let windows = 0
  for (const oy of origins(a.height, wy, step)) {
    for (const ox of origins(a.width, wx, step)) {
      let sa = 0,
        sb = 0,
        saa = 0,
        sbb = 0,
        sab = 0
      for (let y = oy; y < oy + wy; y++) {
        for (let x = ox; x < ox + wx; x++) {
          const va = la[y * w + x] as number
          const vb = lb[y * w + x] as number
          sa += va
          sb += vb
          saa += va * va
          sbb += vb * vb
          sab += va * vb
        }
      }
      const ma = sa / n
      const mb = sb / n
      const va = saa / n - ma * ma
      const vb = sbb / n - mb * mb
      const cov = sab / n - ma * mb
      total += ((2 * ma * mb + C1) * (2 * cov + C2)) / ((ma * ma + mb * mb + C1) * (va + vb + C2))
      windows++
    }
  }
  return total / windows
}

/** Judges two decoded images against the comparator's thresholds (PSNR 40 dB when none is named). */
export function compareImages(a: Image, b: Image, cfg: Pick<ImageComparator, 'minPsnr' | 'minSsim'>): ImageDiff {
  if (a.width !== b.width || a.height !== b.height) {
    return { equal: false, psnr: 0, reason: `sizes differ: ${a.width}x${a.height} vs ${b.width}x${b.height}` }
  }
  const minPsnr = cfg.minPsnr ?? (cfg.minSsim === undefined ? DEFAULT_MIN_PSNR : undefined)
  const p = psnr(a, b)
  const s = cfg.minSsim === undefined ? undefined : ssim(a, b)
  const reasons: string[] = []
  if (minPsnr !== undefined && !(p >= minPsnr)) reasons.push(`PSNR ${p.toFixed(2)} dB below ${minPsnr} dB`)
  if (s !== undefined && cfg.minSsim !== undefined && !(s >= cfg.minSsim))
    reasons.push(`SSIM ${s.toFixed(4)} below ${cfg.minSsim}`)
  return {
    equal: reasons.length === 0,
    psnr: p,
    ...(s === undefined ? {} : { ssim: s }),
    ...(reasons.length ? { reason: reasons.join('; ') } : {}),
  }
}
