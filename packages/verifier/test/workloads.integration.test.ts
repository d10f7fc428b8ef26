import { execFileSync } from 'node:child_process'
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { packCanonicalTar } from '@kiln/artifacts'
import { afterAll, describe, expect, it } from 'vitest'
import { compareOutputs, decodePng, parseNpy, tallyOutputs } from '../src/index.ts'
import { encodePng, packOutputs } from './support/files.ts'

/**
 * The comparators against the real sample workloads: each image runs twice in Docker, as
 * two honest providers would, and the outputs are then perturbed as a cheater might.
 */
const dockerReady = ((): boolean => {
  try {
    execFileSync('docker', ['image', 'inspect', 'kiln/matmul:1', 'kiln/render:1'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
})()

const dirs: string[] = []
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true })
})

/** Runs `image` with a fresh /out as the provider sandbox would, and returns the directory. */
async function runWorkload(image: string, args: string[]): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-workload-'))
  dirs.push(dir)
  await chmod(dir, 0o777) // the images run as nobody
  execFileSync(
    'docker',
    ['run', '--rm', '--network', 'none', '--read-only', '--cap-drop', 'ALL', '-v', `${dir}:/out`, image, ...args],
    { stdio: 'ignore' },
  )
  return dir
}

describe.skipIf(!dockerReady)('comparators on real workload outputs', () => {
  it('kiln/matmul:1 agrees with itself exactly; a nudge within tolerance passes numeric only; a real change fails', async () => {
    const [d1, d2] = [await runWorkload('kiln/matmul:1', ['96']), await runWorkload('kiln/matmul:1', ['96'])] as [
      string,
      string,
    ]
    const a = (await packCanonicalTar(d1)).tar
    const b = (await packCanonicalTar(d2)).tar
    expect((await compareOutputs({ kind: 'exact' }, a, b)).equal).toBe(true)
    const npyBytes = await readFile(join(d1, 'result.npy'))
    const arr = parseNpy(npyBytes)
    expect(arr).toMatchObject({ dtype: 'float32', shape: [96, 96] })

    const perturbed = (relative: number): Promise<Buffer> => {
      const copy = Buffer.from(npyBytes)
      const offset = copy.length - arr.values.length * 4 + 4 * 1234
      copy.writeFloatLE(copy.readFloatLE(offset) * (1 + relative), offset)
      return packOutputs({ 'result.npy': copy, 'summary.json': '' })
    }
    const numeric = { kind: 'numeric' as const, rtol: 1e-4, atol: 1e-6, files: ['result.npy'] }
    const tiny = await perturbed(1e-6)
    expect((await compareOutputs({ kind: 'exact', files: ['result.npy'] }, a, tiny)).equal).toBe(false)
    expect((await compareOutputs(numeric, a, tiny)).equal).toBe(true)
    const cheat = await perturbed(1e-2)
    const r = await compareOutputs(numeric, a, cheat)
    expect(r).toMatchObject({
      equal: false,
      files: [{ path: 'result.npy', metrics: { mismatches: 1, count: 96 * 96 } }],
    })
    // Two honest runs outvote the cheat.
    expect(
      await tallyOutputs(
        [
          { provider: 'cheat', output: cheat },
          { provider: 'p1', output: a },
          { provider: 'p2', output: b },
        ],
        numeric,
      ),
    ).toMatchObject({ verdict: 'decided', caught: ['cheat'] })
  })

  it('kiln/render:1 agrees with itself; a re-encoded copy passes image similarity but not exact; a changed region fails', async () => {
    const [d1, d2] = [
      await runWorkload('kiln/render:1', ['80', '60']),
      await runWorkload('kiln/render:1', ['80', '60']),
    ] as [string, string]
    const a = (await packCanonicalTar(d1)).tar
    const b = (await packCanonicalTar(d2)).tar
    const image = { kind: 'image' as const, minPsnr: 40, minSsim: 0.98 }
    expect((await compareOutputs({ kind: 'exact' }, a, b)).equal).toBe(true)
    expect((await compareOutputs(image, a, b)).equal).toBe(true)

    const img = decodePng(await readFile(join(d1, 'render.png')))
    expect(img).toMatchObject({ width: 80, height: 60, channels: 3 })
    // Same pixels, another encoder (filters and real deflate instead of stored blocks).
    const reencoded = await packOutputs({ 'render.png': encodePng(img) })
    expect((await compareOutputs({ kind: 'exact' }, a, reencoded)).equal).toBe(false)
    expect((await compareOutputs(image, a, reencoded)).equal).toBe(true)
    // A cheater who paints a quarter of the frame instead of rendering it.
    const painted = Uint8Array.from(img.data, (v, i) => (i < img.data.length / 4 ? 128 : v))
    const cheat = await packOutputs({ 'render.png': encodePng({ ...img, data: painted }) })
    const r = await compareOutputs(image, a, cheat)
    expect(r.equal).toBe(false)
    expect(r.files[0]?.metrics?.psnr).toBeLessThan(40)
  })
})
