import { describe, expect, it } from 'vitest'
import { compareOutputs, globToRegExp } from '../src/index.ts'
import { encodePng, encodePpm, npy, packOutputs, picture, rawF32 } from './support/files.ts'

const values = Array.from({ length: 64 }, (_, i) => Math.sin(i) * 100)
const nudged = (d: number, at = 5) => values.map((v, i) => (i === at ? v + d : v))

describe('compareOutputs', () => {
  it('exact: the same archive agrees, one changed byte does not', async () => {
    const a = await packOutputs({ 'result.txt': 'forty-two\n', 'sub/x.bin': 'x' })
    const b = await packOutputs({ 'result.txt': 'forty-two\n', 'sub/x.bin': 'x' })
    const c = await packOutputs({ 'result.txt': 'forty-three\n', 'sub/x.bin': 'x' })
    expect(await compareOutputs({ kind: 'exact' }, a, b)).toMatchObject({ equal: true, comparator: 'exact' })
    expect(await compareOutputs({ kind: 'exact' }, a, c)).toMatchObject({
      equal: false,
      reason: expect.stringContaining('output digests differ'),
    })
  })

  it('exact with a file selection ignores files left out (timings)', async () => {
    const a = await packOutputs({ 'result.txt': 'same', 'timing.txt': '1.23 s' })
    const b = await packOutputs({ 'result.txt': 'same', 'timing.txt': '1.31 s' })
    expect((await compareOutputs({ kind: 'exact', files: ['result.txt'] }, a, b)).equal).toBe(true)
    expect(await compareOutputs({ kind: 'exact', files: ['*.txt'] }, a, b)).toMatchObject({
      equal: false,
      reason: expect.stringContaining('timing.txt: content differs'),
    })
  })

  it('numeric: .npy and raw float32 within tolerance agree, outside do not, by path', async () => {
    const a = await packOutputs({ 'out/result.npy': npy(values, { shape: [8, 8] }), 'out/raw.f32': rawF32(values) })
    const close = await packOutputs({
      'out/result.npy': npy(nudged(1e-4), { shape: [8, 8] }),
      'out/raw.f32': rawF32(nudged(1e-4, 9)),
    })
    const far = await packOutputs({
      'out/result.npy': npy(nudged(0.5), { shape: [8, 8] }),
      'out/raw.f32': rawF32(values),
    })
    const cfg = { kind: 'numeric' as const, rtol: 1e-5, atol: 1e-6 }
    const ok = await compareOutputs(cfg, a, close)
    expect(ok.equal).toBe(true)
    expect(ok.files.map((f) => f.path)).toEqual(['out/raw.f32', 'out/result.npy'])
    const bad = await compareOutputs(cfg, a, far)
    expect(bad.equal).toBe(false)
    expect(bad.files.find((f) => f.path === 'out/result.npy')).toMatchObject({
      equal: false,
      metrics: { mismatches: 1, count: 64 },
    })
    expect(bad.files.find((f) => f.path === 'out/raw.f32')).toMatchObject({ equal: true })
  })

  it('numeric: a differing file it cannot read as numbers is a difference, not a pass', async () => {
    const a = await packOutputs({ 'result.npy': npy(values), 'summary.json': '{"checksum": 1.0}' })
    const b = await packOutputs({ 'result.npy': npy(values), 'summary.json': '{"checksum": 1.0000001}' })
    expect(await compareOutputs({ kind: 'numeric' }, a, b)).toMatchObject({
      equal: false,
      reason: expect.stringContaining('summary.json'),
    })
    expect((await compareOutputs({ kind: 'numeric', files: ['*.npy'] }, a, b)).equal).toBe(true)
  })

  it('numeric: an unsupported or missing array is reported as a difference with its reason', async () => {
    const a = await packOutputs({ 'r.npy': npy([1, 2], { dtype: '>f4' }) })
    const b = await packOutputs({ 'r.npy': npy([1, 3], { dtype: '>f4' }) })
    expect(await compareOutputs({ kind: 'numeric' }, a, b)).toMatchObject({
      equal: false,
      reason: expect.stringContaining("dtype '>f4' is not supported"),
    })
    const none = await packOutputs({ 'other.npy': npy([1, 2]) })
    expect(await compareOutputs({ kind: 'numeric', files: ['r.npy'] }, a, none)).toMatchObject({
      equal: false,
      reason: expect.stringContaining('only in the first output'),
    })
  })

  it('image: PNG and PPM renders compared by PSNR or SSIM', async () => {
    const img = picture(48, 32)
    const noisy = { ...img, data: img.data.map((v, i) => (i % 97 === 0 ? v ^ 0x01 : v)) }
    const wrong = { ...img, data: img.data.map((v, i) => (i < img.data.length / 2 ? 255 - v : v)) }
    const a = await packOutputs({ 'render.png': encodePng(img), 'frame.ppm': encodePpm(img) })
    const b = await packOutputs({ 'render.png': encodePng(noisy, () => 4), 'frame.ppm': encodePpm(img, false) })
    const c = await packOutputs({ 'render.png': encodePng(wrong), 'frame.ppm': encodePpm(img) })
    expect((await compareOutputs({ kind: 'image', minPsnr: 45 }, a, b)).equal).toBe(true)
    expect((await compareOutputs({ kind: 'image', minSsim: 0.99 }, a, b)).equal).toBe(true)
    const r = await compareOutputs({ kind: 'image', minSsim: 0.99 }, a, c)
    expect(r.equal).toBe(false)
    expect(r.files.find((f) => f.path === 'render.png')?.metrics?.ssim).toBeLessThan(0.9)
  })

  it('treats an unreadable archive as a difference and a bad config as an error', async () => {
    const a = await packOutputs({ 'x.npy': npy([1]) })
    expect(await compareOutputs({ kind: 'numeric' }, a, Buffer.from('not a tar at all'.repeat(40)))).toMatchObject({
      equal: false,
      reason: expect.stringContaining('unreadable output archive'),
    })
    await expect(compareOutputs({ kind: 'numeric', rtol: -1 }, a, a)).rejects.toThrowError(
      expect.objectContaining({ kind: 'PAYLOAD_INVALID' }),
    )
    await expect(compareOutputs({ kind: 'fuzzy' } as never, a, a)).rejects.toThrowError(
      expect.objectContaining({ kind: 'PAYLOAD_INVALID' }),
    )
  })
})

describe('globToRegExp', () => {
  it('matches * within a segment and ** across them', () => {
    expect(globToRegExp('*.npy').test('a.npy')).toBe(true)
    expect(globToRegExp('*.npy').test('d/a.npy')).toBe(false)
    expect(globToRegExp('**/*.npy').test('a.npy')).toBe(true)
    expect(globToRegExp('**/*.npy').test('d/e/a.npy')).toBe(true)
    expect(globToRegExp('out/?.f32').test('out/a.f32')).toBe(true)
    expect(globToRegExp('a+b.txt').test('aab.txt')).toBe(false)
  })
})
