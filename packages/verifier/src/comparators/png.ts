import { crc32, inflateSync } from 'node:zlib'
import { KilnError } from '@kiln/protocol'

/** 8-bit pixels, row-major, `channels` samples per pixel: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA. */
export interface Image {
  width: number
  height: number
  channels: 1 | 2 | 3 | 4
  data: Uint8Array
}

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]
const CHANNELS: Record<number, Image['channels']> = { 0: 1, 2: 3, 4: 2, 6: 4 }
/** Outputs are bounded by the job's outputs.maxBytes, but a tiny PNG can claim a huge canvas. */
const MAX_PIXELS = 100_000_000

function refuse(what: string, why: string): never {
  throw new KilnError('PAYLOAD_INVALID', `${what}: ${why}`, { reason: why })
}

/**
 * Decodes a PNG: 8-bit gray, gray+alpha, RGB or RGBA, not interlaced, any of the five row
 * filters, zlib inflate from node:zlib. Palette, 16-bit, sub-byte depths and Adam7 are
 * refused by name; chunk CRCs are checked so a corrupted file is not read as pixels.
 */
export function decodePng(bytes: Uint8Array, what = 'png file'): Image {
  if (bytes.length < 8 || SIGNATURE.some((b, i) => bytes[i] !== b)) refuse(what, 'not a PNG (bad signature)')
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  let pos = 8
  let header: { width: number; height: number; channels: Image['channels'] } | undefined
  const idat: Uint8Array[] = []
  let ended = false
  while (pos + 12 <= bytes.length && !ended) {
    const len = view.getUint32(pos)
    const type = String.fromCharCode(...bytes.subarray(pos + 4, pos + 8))
    if (pos + 12 + len > bytes.length) refuse(what, `chunk ${type} runs past the end of the file`)
    const data = bytes.subarray(pos + 8, pos + 8 + len)
    if (crc32(bytes.subarray(pos + 4, pos + 8 + len)) !== view.getUint32(pos + 8 + len))
      refuse(what, `chunk ${type} has a bad CRC`)
    if (type === 'IHDR') header = readHeader(data, what)
    else if (type === 'IDAT') idat.push(data)
    else if (type === 'IEND') ended = true
    else if (type === 'PLTE' || type === 'tRNS')
      refuse(what, `${type} chunks are not supported (palette and transparency-key images)`)
    // Other ancillary chunks (text, gamma, time) do not change the pixels.
    pos += 12 + len
  }
  if (!header) refuse(what, 'no IHDR chunk')
  if (!ended) refuse(what, 'no IEND chunk (truncated)')
  const { width, height, channels } = header
  const stride = width * channels
  const need = height * (stride + 1)
  let raw: Buffer
  try {
    // Bounded: a few kilobytes of deflate can expand to gigabytes.
    raw = inflateSync(Buffer.concat(idat), { maxOutputLength: need + 1 })
  } catch (cause) {
    throw new KilnError(
      'PAYLOAD_INVALID',
      `${what}: image data does not inflate to ${need} bytes`,
      { reason: 'bad zlib stream' },
      { cause },
    )
  }
  if (raw.length !== need) refuse(what, `image data is ${raw.length} bytes, ${width}x${height} needs ${need}`)
  return { width, height, channels, data: unfilter(raw, width, height, channels, what) }
}

function readHeader(d: Uint8Array, what: string): { width: number; height: number; channels: Image['channels'] } {
  if (d.length !== 13) refuse(what, 'IHDR has the wrong length')
  const v = new DataView(d.buffer, d.byteOffset, d.byteLength)
  const width = v.getUint32(0)
  const height = v.getUint32(4)
  const [depth, colorType, compression, filter, interlace] = [d[8], d[9], d[10], d[11], d[12]] as number[]
  if (width === 0 || height === 0 || width * height > MAX_PIXELS)
    refuse(what, `${width}x${height} is not a supported size`)
  if (depth !== 8) refuse(what, `bit depth ${depth} is not supported (8 is)`)
  const channels = CHANNELS[colorType as number]
  if (!channels) refuse(what, `colour type ${colorType} is not supported (gray, gray+alpha, RGB, RGBA are)`)
  if (compression !== 0 || filter !== 0) refuse(what, 'unknown compression or filter method')
  if (interlace !== 0) refuse(what, 'interlaced (Adam7) images are not supported')
  return { width, height, channels }
}

/** Reverses the per-row filters (PNG spec 9.2); bpp is the channel count at 8 bits. */
function unfilter(raw: Uint8Array, width: number, height: number, bpp: number, what: string): Uint8Array {
  const stride = width * bpp
  const out = new Uint8Array(height * stride)
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)] as number
    const src = y * (stride + 1) + 1
    const row = y * stride
    const prev = row - stride
    for (let x = 0; x < stride; x++) {
      const cur = raw[src + x] as number
      const a = x >= bpp ? (out[row + x - bpp] as number) : 0
      const b = y > 0 ? (out[prev + x] as number) : 0
      const c = x >= bpp && y > 0 ? (out[prev + x - bpp] as number) : 0
      let v: number
      switch (filter) {
        case 0:
          v = cur
          break
        case 1:
          v = cur + a
          break
        case 2:
          v = cur + b
          break
        case 3:
          v = cur + ((a + b) >> 1)
          break
        case 4:
          v = cur + paeth(a, b, c)
          break
        default:
          refuse(what, `row ${y} has unknown filter type ${filter}`)
      }
      out[row + x] = v & 0xff
    }
  }
  return out
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c
  const pa = Math.abs(p - a)
  const pb = Math.abs(p - b)
  const pc = Math.abs(p - c)
  if (pa <= pb && pa <= pc) return a
  return pb <= pc ? b : c
}

/** Binary PPM (P6), maxval up to 255: what many renderers write when asked for raw pixels. */
export function decodePpm(bytes: Uint8Array, what = 'ppm file'): Image {
  const fields: number[] = []
  let pos = 2
  if (bytes[0] !== 0x50 || bytes[1] !== 0x36) refuse(what, 'not a binary PPM (P6)')
  while (fields.length < 3) {
    const ch = bytes[pos]
    if (ch === undefined) refuse(what, 'truncated header')
    if (ch === 0x23) {
      // '#' comment to the end of the line
      while (pos < bytes.length && bytes[pos] !== 0x0a) pos++
    } else if (ch === 0x20 || (ch >= 0x09 && ch <= 0x0d)) {
      pos++
    } else if (ch >= 0x30 && ch <= 0x39) {
      let n = 0
      while (pos < bytes.length && (bytes[pos] as number) >= 0x30 && (bytes[pos] as number) <= 0x39)
        n = n * 10 + (bytes[pos++] as number) - 0x30
      fields.push(n)
    } else {
      refuse(what, `unexpected byte ${ch} in the header`)
    }
  }
  // Exactly one whitespace byte separates the header from the pixels.
  const sep = bytes[pos]
  if (sep === undefined || !(sep === 0x20 || (sep >= 0x09 && sep <= 0x0d))) refuse(what, 'no whitespace after maxval')
  pos++
  const [width, height, maxval] = fields as [number, number, number]
  if (width === 0 || height === 0 || width * height > MAX_PIXELS)
    refuse(what, `${width}x${height} is not a supported size`)
  if (maxval < 1 || maxval > 255) refuse(what, `maxval ${maxval} is not supported (1..255 are)`)
  const need = width * height * 3
  if (bytes.length - pos !== need)
    refuse(what, `holds ${bytes.length - pos} pixel bytes, ${width}x${height} needs ${need}`)
  const data = new Uint8Array(need)
  for (let i = 0; i < need; i++)
    data[i] = maxval === 255 ? (bytes[pos + i] as number) : Math.round(((bytes[pos + i] as number) * 255) / maxval)
  return { width, height, channels: 3, data }
}
