/**
 * `npm run bench:inputs`: submit → container start for a job with a 200 MB input, cold (a
 * digest no provider holds: the provider fetches it from the marketplace over the mesh and
 * checks it) and cached (the digest one provider holds already), in one run on a network of
 * two providers, the holder priced 10% above the other; and where cache-aware placement put
 * the cached runs. The baseline in the same run is the job without any input.
 */
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Identity } from '@kiln/protocol'
import { createKilnClient, uploadInput } from '@kiln/sdk'
import { startNetwork } from '../test/support/network.ts'

const RUNS = Number(process.env.BENCH_RUNS ?? 3)
const MB = Number(process.env.BENCH_INPUT_MB ?? 200)
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN
const base = {
  image: 'kiln/busybox:1',
  command: ['sh', '-c', 'ls -l /in 2>/dev/null; true'],
  resources: { cpu: 0.5, memoryMb: 64 },
  maxPricePerHour: 1_000_000,
  timeoutSec: 120,
}

const dir = mkdtempSync(join(tmpdir(), 'kiln-bench-inputs-'))
// Provider 0, 10% dearer, starts alone and fills its cache; provider 1 joins after.
const net = await startNetwork({
  providers: 1,
  dataDir: join(dir, 'net'),
  providerPrice: (i) => (i === 0 ? 396_000 : 360_000),
})
const coldMs: number[] = []
const cachedMs: number[] = []
const plainMs: number[] = []
let onHolder = 0
try {
  const id = Identity.generate()
  await net.fund(id.address, { lamports: 5_000_000_000, tokens: 100_000_000 })
  const kiln = createKilnClient({ url: net.api, identity: id })
  const upload = async (label: string) => {
    const path = join(dir, `${label}.bin`)
    writeFileSync(path, randomBytes(MB * 1024 * 1024))
    const got = await uploadInput({ url: net.api, identity: id }, path)
    rmSync(path)
    return got
  }
  const timed = async (spec: object) => {
    const t = Date.now()
    const { jobId } = await kiln.submit(spec as typeof base)
    const job = await kiln.watch(jobId, { pollMs: 50 })
    if (job.state !== 'done' || !job.startedAt)
      throw new Error(`bench job ${jobId} ended ${job.state}: ${job.error?.message ?? ''}`)
    return { ms: job.startedAt - t, provider: job.provider }
  }
  for (let i = 0; i < RUNS; i++) plainMs.push((await timed(base)).ms)
  const held = await upload('held')
  const withHeld = { ...base, inputs: [{ name: 'weights', source: 'upload', ...held }] }
  const first = await timed(withHeld)
  const holder = first.provider
  process.stdout.write(`cold fill on provider 0: submit→start ${first.ms} ms (${MB} MB fetched)\n`)
  const cheap = String((await net.startProvider(1)).info.address)
  await new Promise((r) => setTimeout(r, 6000)) // both adverts, the holder's with its cache
  for (let i = 0; i < RUNS; i++) {
    const cold = await timed({
      ...base,
      inputs: [{ name: 'weights', source: 'upload', ...(await upload(`cold-${i}`)) }],
    })
    coldMs.push(cold.ms)
    const cached = await timed(withHeld)
    cachedMs.push(cached.ms)
    if (cached.provider === holder) onHolder++
    process.stdout.write(
      `run ${i + 1}/${RUNS}: cold ${cold.ms} ms on ${cold.provider === cheap ? 'the cheaper provider' : 'the holder'}, cached ${cached.ms} ms on ${cached.provider === holder ? 'the holder' : 'the cheaper provider'}\n`,
    )
  }
} finally {
  await net.stop()
  rmSync(dir, { recursive: true, force: true })
}
process.stdout.write(
  `\nno input     median ${median(plainMs).toFixed(0)} ms\ncold ${MB} MB  median ${median(coldMs).toFixed(0)} ms\ncached       median ${median(cachedMs).toFixed(0)} ms\nratio cold/cached: ${(median(coldMs) / median(cachedMs)).toFixed(1)}x\n`,
)
process.stdout.write(
  `inputs: cached_start_ms=${median(cachedMs).toFixed(0)} cold_start_ms=${median(coldMs).toFixed(0)} placed_on_cache=${(onHolder / RUNS).toFixed(2)}\n`,
)
