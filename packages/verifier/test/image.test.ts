import { crc32, deflateSync } from 'node:zlib'
import { describe, expect, it } from 'vitest'
import { compareImages, decodeImage, decodePng, decodePpm, psnr, ssim, type Image } from '../src/index.ts'
import { encodePng, encodePpm, picture, rng, type Pixels } from './support/files.ts'

const invalid = (reason: RegExp) =>
  expect.objectContaining({ kind: 'PAYLOAD_INVALID', message: expect.stringMatching(reason) })

function withNoise(img: Pixels, amplitude: number, seed = 1): Pixels {
  const r = rng(seed)
  const data = img.data.map((v) => Math.max(0, Math.min(255, v + Math.round((r() * 2 - 1) * amplitude))))
  return { ...img, data }
}

describe('decodePng', () => {
  it.each([1, 2, 3, 4] as const)('decodes %i-channel 8-bit images with every filter type', (channels) => {
    const img = picture(37, 23, channels)
    for (const filter of [0, 1, 2, 3, 4]) {
      const d = decodePng(encodePng(img, () => filter))
      expect(d).toMatchObject({ width: 37, height: 23, channels })
      expect(Buffer.from(d.data).equals(Buffer.from(img.data))).toBe(true)
    }
    // Mixed filters per row, data split over several IDAT chunks, an ancillary chunk in between.
    expect(
      Buffer.from(decodePng(encodePng(img, (y) => (y * 7) % 5, { idatChunks: 4 })).data).equals(Buffer.from(img.data)),
    ).toBe(true)
  })

  it('refuses what it does not read, by name', () => {
    const png = encodePng(picture(4, 4, 3))
    const corrupted = Buffer.from(png)
    corrupted[24] = 16 // IHDR bit depth, CRC left stale
    expect(() => decodePng(corrupted)).toThrowError(invalid(/bad CRC/))
    expect(() => decodePng(patchIhdr(png, 12, 1))).toThrowError(invalid(/interlaced/))
    expect(() => decodePng(patchIhdr(png, 8, 16))).toThrowError(invalid(/bit depth 16/))
    expect(() => decodePng(patchIhdr(png, 9, 3))).toThrowError(invalid(/colour type 3/))
    expect(() => decodePng(png.subarray(0, png.length - 12))).toThrowError(invalid(/IEND/))
    expect(() => decodePng(Buffer.from('GIF89a'))).toThrowError(invalid(/not a PNG/))
  })
})

/** Changes one IHDR byte and fixes the chunk's CRC, so only the field itself is wrong. */
function patchIhdr(png: Buffer, offset: number, value: number): Buffer {
  const out = Buffer.from(png)
  out[16 + offset] = value
  out.writeUInt32BE(crc32(out.subarray(12, 29)), 29)
  return out
}
describe('decodePpm', () => {
  it('decodes binary P6 with comments, and scales a smaller maxval', () => {
    const img = picture(9, 5, 3)
    expect(Buffer.from(decodePpm(encodePpm(img)).data).equals(Buffer.from(img.data))).toBe(true)
    const small = Buffer.concat([Buffer.from('P6 1 1 15\n'), Buffer.from([15, 0, 5])])
    expect(Array.from(decodePpm(small).data)).toEqual([255, 0, 85])
  })

  it('refuses 16-bit, ASCII P3 and truncated pixel data', () => {
    expect(() => decodePpm(Buffer.concat([Buffer.from('P6 1 1 65535\n'), Buffer.alloc(6)]))).toThrowError(
      invalid(/maxval 65535/),
    )
    expect(() => decodePpm(Buffer.from('P3 1 1 255\n1 2 3\n'))).toThrowError(invalid(/not a binary PPM/))
    expect(() => decodePpm(encodePpm(picture(3, 3)).subarray(0, -1))).toThrowError(invalid(/needs 27/))
  })

  it('is picked by content, whatever the file is called', () => {
    expect(decodeImage(encodePpm(picture(2, 2))).channels).toBe(3)
    expect(() => decodeImage(Buffer.from('hello'))).toThrowError(invalid(/not a PNG or binary PPM/))
  })
})

describe('psnr and ssim', () => {
  const base = picture(64, 48) as Image

  it('are +Infinity and 1 for identical images, across encodings', () => {
    const fromPng = decodePng(encodePng(base))
    const fromPpm = decodePpm(encodePpm(base))
    expect(psnr(fromPng, fromPpm)).toBe(Infinity)
    expect(ssim(fromPng, fromPpm)).toBeCloseTo(1, 12)
  })

  it('fall as noise grows', () => {
    const p = [2, 8, 32].map((a) => psnr(base, withNoise(base, a)))
    const s = [2, 8, 32].map((a) => ssim(base, withNoise(base, a)))
    expect(p[0]).toBeGreaterThan(p[1] as number)
    expect(p[1]).toBeGreaterThan(p[2] as number)
    expect(s[0]).toBeGreaterThan(s[1] as number)
    expect(s[1]).toBeGreaterThan(s[2] as number)
    expect(p[0]).toBeGreaterThan(40)
    expect(s[0]).toBeGreaterThan(0.99)
  })

  it('see a structural change that keeps the mean: SSIM drops though PSNR stays moderate', () => {
    // Shifting the picture by one pixel keeps every statistic except where things are.
    const shifted = { ...base, data: Uint8Array.from(base.data.map((_, i) => base.data[Math.max(0, i - 3)] as number)) }
    expect(ssim(base, shifted)).toBeLessThan(0.99)
  })

  it('compare gray with its RGB expansion as equal', () => {
    const gray = picture(16, 16, 1)
    const rgb = {
      ...gray,
      channels: 3 as const,
      data: Uint8Array.from(Array.from(gray.data).flatMap((v) => [v, v, v])),
    }
    expect(psnr(gray, rgb)).toBe(Infinity)
  })
})

describe('compareImages', () => {
  const base = picture(64, 48) as Image
  it('applies the PSNR and SSIM thresholds, PSNR 40 dB by default', () => {
    expect(compareImages(base, withNoise(base, 1), {}).equal).toBe(true)
    expect(compareImages(base, withNoise(base, 40), {})).toMatchObject({
      equal: false,
      reason: expect.stringContaining('PSNR'),
    })
    expect(compareImages(base, withNoise(base, 8), { minSsim: 0.999 })).toMatchObject({
      equal: false,
      reason: expect.stringContaining('SSIM'),
    })
    expect(compareImages(base, withNoise(base, 8), { minSsim: 0.9, minPsnr: 20 }).equal).toBe(true)
  })

  it('never matches images of different sizes', () => {
    expect(compareImages(base, picture(48, 64) as Image, { minPsnr: 0 })).toMatchObject({
      equal: false,
      reason: expect.stringContaining('sizes differ'),
    })
  })
})

describe('decodePng against hostile input', () => {
  it('refuses image data that inflates beyond the declared size instead of allocating it', () => {
    const png = encodePng(picture(8, 8, 1))
    // The same 8x8 header, with IDAT data that inflates to 10 MB of zeros.
    const bomb = Buffer.from(png)
    const idatAt = bomb.indexOf('IDAT') - 4
    const z = deflateSync(Buffer.alloc(10_000_000))
    const idat = Buffer.alloc(12 + z.length)
    idat.writeUInt32BE(z.length, 0)
    idat.write('IDAT', 4, 'latin1')
    z.copy(idat, 8)
    idat.writeUInt32BE(crc32(idat.subarray(4, 8 + z.length)), 8 + z.length)
    const end = bomb.indexOf('IEND') - 4
    const hostile = Buffer.concat([bomb.subarray(0, idatAt), idat, bomb.subarray(end)])
    expect(() => decodePng(hostile)).toThrowError(invalid(/does not inflate to 72 bytes/))
    expect(decodePng(png).width).toBe(8)
  })
})
