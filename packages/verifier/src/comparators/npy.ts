import { KilnError } from '@kiln/protocol'

/** A dense float array as read from an output file. */
export interface FloatArray {
  dtype: 'float32' | 'float64'
  shape: number[]
  values: Float32Array | Float64Array
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59] // \x93NUMPY

function refuse(what: string, why: string): never {
  throw new KilnError('PAYLOAD_INVALID', `${what}: ${why}`, { reason: why })
}

/**
 * Parses a NumPy .npy file, format 1.0 or 2.0 (3.0 differs only in header encoding and is
 * read too). Only little-endian float32/float64 in C order is accepted: anything else is
 * refused by name rather than guessed at, because a misread array would compare as a
 * cheat (or worse, as a match).
 */
export function parseNpy(bytes: Uint8Array, what = 'npy file'): FloatArray {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) refuse(what, 'not an .npy file (bad magic)')
  const major = bytes[6] as number
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  let headerLen: number
  let start: number
  if (major === 1) {
    headerLen = view.getUint16(8, true)
    start = 10
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) refuse(what, 'truncated header')
    headerLen = view.getUint32(8, true)
    start = 12
  } else {
    refuse(what, `npy format version ${major}.${bytes[7]} is not supported (1.0, 2.0 and 3.0 are)`)
  }
  if (start + headerLen > bytes.length) refuse(what, 'truncated header')
  const header = Buffer.from(bytes.buffer, bytes.byteOffset + start, headerLen).toString(
    major === 3 ? 'utf8' : 'latin1',
  )
  const descr = /['"]descr['"]\s*:\s*['"]([^'"]*)['"]/.exec(header)?.[1]
  const fortran = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(header)?.[1]
  const shapeText = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(header)?.[1]
  if (descr === undefined || fortran === undefined || shapeText === undefined)
    refuse(what, 'header lacks descr, fortran_order or shape')
  let dtype: FloatArray['dtype']
  if (descr === '<f4') dtype = 'float32'
  else if (descr === '<f8') dtype = 'float64'
  else refuse(what, `dtype '${descr}' is not supported (little-endian float32 '<f4' or float64 '<f8' are)`)
  if (fortran !== 'False') refuse(what, 'Fortran-order arrays are not supported (C order is)')
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) => {
      if (!/^\d+$/.test(s)) refuse(what, `shape entry '${s}' is not a non-negative integer`)
      return Number(s)
    })
  const count = shape.reduce((a, b) => a * b, 1)
  const itemSize = dtype === 'float32' ? 4 : 8
  const dataStart = start + headerLen
  if (bytes.length - dataStart !== count * itemSize) {
    refuse(
      what,
      `holds ${bytes.length - dataStart} data bytes, shape (${shape.join(', ')}) of ${dtype} needs ${count * itemSize}`,
    )
  }
  return { dtype, shape, values: readFloats(view, dataStart, count, dtype) }
}

/** Raw little-endian float32 with no header: a flat array. */
export function parseRawFloat32(bytes: Uint8Array, what = 'raw float32 file'): FloatArray {
  if (bytes.length % 4 !== 0) refuse(what, `${bytes.length} bytes is not a whole number of float32 values`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  return { dtype: 'float32', shape: [bytes.length / 4], values: readFloats(view, 0, bytes.length / 4, 'float32') }
}

/** Explicit little-endian reads: the data need not be aligned, and the host's order does not matter. */
function readFloats(
  view: DataView,
  offset: number,
  count: number,
  dtype: FloatArray['dtype'],
): Float32Array | Float64Array {
  if (dtype === 'float32') {
    const out = new Float32Array(count)
    for (let i = 0; i < count; i++) out[i] = view.getFloat32(offset + i * 4, true)
    return out
  }
  const out = new Float64Array(count)
  for (let i = 0; i < count; i++) out[i] = view.getFloat64(offset + i * 8, true)
  return out
}
