import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { deflateSync, crc32 } from 'node:zlib'
import { packCanonicalTar } from '@kiln/artifacts'
import { mulberry32 } from '../../../../test/support/prng.ts'

/** Writes `files` into a fresh directory and packs it exactly as a provider does. */
export async function packOutputs(files: Record<string, Uint8Array | string>): Promise<Buffer> {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-verifier-'))
  try {
    for (const [path, content] of Object.entries(files)) {
      await mkdir(dirname(join(dir, path)), { recursive: true })
      await writeFile(join(dir, path), content)
    }
    return (await packCanonicalTar(dir)).tar
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/** A .npy file as numpy.save writes it (format 1.0, or 2.0 with a 4-byte header length). */
export function npy(
  values: ArrayLike<number>,
  opts: { shape?: number[]; dtype?: '<f4' | '<f8' | '>f4' | '<i4'; version?: 1 | 2; fortran?: boolean } = {},
): Buffer {
  const dtype = opts.dtype ?? '<f4'
  const shape = opts.shape ?? [values.length]
  const version = opts.version ?? 1
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`
  const dict = `{'descr': '${dtype}', 'fortran_order': ${opts.fortran ? 'True' : 'False'}, 'shape': ${shapeText}, }`
  const pre = version === 1 ? 10 : 12
  const pad = (64 - ((pre + dict.length + 1) % 64)) % 64
  const header = Buffer.from(dict + ' '.repeat(pad) + '\n', 'latin1')
  const lead = Buffer.alloc(pre)
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]).copy(lead)
  if (version === 1) lead.writeUInt16LE(header.length, 8)
  else lead.writeUInt32LE(header.length, 8)
  const size = dtype.endsWith('8') ? 8 : 4
  const data = Buffer.alloc(values.length * size)
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number
    if (dtype === '<f4') data.writeFloatLE(v, i * 4)
    else if (dtype === '>f4') data.writeFloatBE(v, i * 4)
    else if (dtype === '<f8') data.writeDoubleLE(v, i * 8)
    else data.writeInt32LE(v, i * 4)
  }
  return Buffer.concat([lead, header, data])
}

export function rawF32(values: ArrayLike<number>): Buffer {
  const b = Buffer.alloc(values.length * 4)
  for (let i = 0; i < values.length; i++) b.writeFloatLE(values[i] as number, i * 4)
  return b
}

export interface Pixels {
  width: number
  height: number
  channels: 1 | 2 | 3 | 4
  data: Uint8Array
}

/** A deterministic test picture: smooth gradients plus a few hard edges. */
export function picture(width: number, height: number, channels: Pixels['channels'] = 3): Pixels {
  const data = new Uint8Array(width * height * channels)
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < channels; c++) {
        const edge = (x > width / 3 && x < width / 2) || y % 16 < 4 ? 90 : 0
        data[(y * width + x) * channels + c] = (x * 3 + y * 2 + c * 40 + edge) & 0xff
      }
    }
  }
  return { width, height, channels, data }
}

const COLOR_TYPE = { 1: 0, 2: 4, 3: 2, 4: 6 } as const

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c
  const pa = Math.abs(p - a),
    pb = Math.abs(p - b),
    pc = Math.abs(p - c)
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c
}

function chunk(type: string, data: Uint8Array): Buffer {
  const head = Buffer.alloc(8)
  head.writeUInt32BE(data.length, 0)
  head.write(type, 4, 'latin1')
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0)
  return Buffer.concat([head, data, crc])
}

/** Encodes a PNG with the given filter type per row (cycling through all five by default). */
export function encodePng(
  img: Pixels,
  filterOf: (y: number) => number = (y) => y % 5,
  opts: { idatChunks?: number } = {},
): Buffer {
  const { width, height, channels: bpp, data } = img
  const stride = width * bpp
  const raw = Buffer.alloc(height * (stride + 1))
  for (let y = 0; y < height; y++) {
    const f = filterOf(y)
    raw[y * (stride + 1)] = f
    for (let x = 0; x < stride; x++) {
      const cur = data[y * stride + x] as number
      const a = x >= bpp ? (data[y * stride + x - bpp] as number) : 0
      const b = y > 0 ? (data[(y - 1) * stride + x] as number) : 0
      const c = x >= bpp && y > 0 ? (data[(y - 1) * stride + x - bpp] as number) : 0
      const pred = [0, a, b, (a + b) >> 1, paeth(a, b, c)][f] as number
      raw[y * (stride + 1) + 1 + x] = (cur - pred) & 0xff
    }
  }
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(width, 0)
  ihdr.writeUInt32BE(height, 4)
  ihdr[8] = 8
  ihdr[9] = COLOR_TYPE[bpp]
  const z = deflateSync(raw)
  const parts = opts.idatChunks ?? 1
  const size = Math.ceil(z.length / parts)
  const idats: Buffer[] = []
  for (let i = 0; i < z.length; i += size) idats.push(chunk('IDAT', z.subarray(i, i + size)))
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
  return Buffer.concat([
    sig,
    chunk('IHDR', ihdr),
    chunk('tEXt', Buffer.from('Comment\0kiln test', 'latin1')),
    ...idats,
    chunk('IEND', new Uint8Array(0)),
  ])
}

export function encodePpm(img: Pixels, comment = true): Buffer {
  if (img.channels !== 3) throw new Error('P6 is RGB')
  return Buffer.concat([
    Buffer.from(`P6\n${comment ? '# kiln test\n' : ''}${img.width} ${img.height}\n255\n`, 'latin1'),
    Buffer.from(img.data),
  ])
}

/** A seeded PRNG for noise, so tests are reproducible. */
export const rng = mulberry32
