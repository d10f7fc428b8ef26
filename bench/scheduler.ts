/**
 * `npm run bench:scheduler`: places 100,000 queued jobs with mixed constraints on 1,000 and on
 * 10,000 providers with the indexed matching engine, and in the same run with the baseline
 * (scan every provider, sort by score), and compares throughput, latency and the choices.
 *
 * Everything is generated from a seeded PRNG. Jobs wait as they do in the coordinator
 * (300 clients, one of them sending 30% of the jobs): each placement pass orders every
 * waiting job with the coordinator's own fairOrder and tries them in that order, as
 * dispatch.ts does. A placed job ends after a number of later placements drawn per job,
 * which frees its capacity, so all of them can be placed; a job that fits nowhere yet waits
 * for the next pass. The engine's own numbers come from a run of the engine alone. A second run adds the baseline, which mirrors the engine's state
 * and places a sample of the attempts itself (it needs milliseconds each at 10,000 providers),
 * timed on exactly the same states; the ratio compares the two on those attempts, and the
 * bench checks that both choose the same provider. BENCH_JOBS, BENCH_SEED,
 * BENCH_BASELINE_EVERY_1K and BENCH_BASELINE_EVERY_10K override the sizes.
 */
import { JobSpec, type Address, type CapacityAdvert } from '@kiln/protocol'
import { createMatchingEngine, fairOrder, type PlaceOptions, type ProviderInput } from '@kiln/scheduler'
import { mulberry32 } from '../test/support/prng.ts'

const JOBS = Number(process.env.BENCH_JOBS ?? 100_000)
const SEED = Number(process.env.BENCH_SEED ?? 42)
// The baseline places (and is timed on) one attempt in N, spread over the whole run.
const SAMPLE_EVERY: Record<number, number> = {
  1000: Number(process.env.BENCH_BASELINE_EVERY_1K ?? 5),
  10_000: Number(process.env.BENCH_BASELINE_EVERY_10K ?? 40),
}

function prng(seed: number) {
  const rand = mulberry32(seed)
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!
  const weighted = <T extends { w: number }>(xs: readonly T[]): T => {
    let x = rand() * xs.reduce((a, b) => a + b.w, 0)
    for (const v of xs) if ((x -= v.w) < 0) return v
    return xs[xs.length - 1]!
  }
  return { rand, pick, weighted }
}

// Machines people rent out: CPU boxes, gaming GPUs, cloud cards and the odd 8-GPU server.
const MACHINES: {
  w: number
  cpu: number
  memGb: number
  price: number
  gpu?: [family: string, model: string, vramMb: number, count: number]
}[] = [
  { w: 14, cpu: 4, memGb: 8, price: 40_000 },
  { w: 12, cpu: 8, memGb: 32, price: 90_000 },
  { w: 8, cpu: 16, memGb: 64, price: 160_000 },
  { w: 4, cpu: 64, memGb: 256, price: 500_000 },
  { w: 12, cpu: 8, memGb: 32, price: 250_000, gpu: ['3090', 'NVIDIA GeForce RTX 3090', 24_576, 1] },
  { w: 14, cpu: 16, memGb: 64, price: 400_000, gpu: ['4090', 'NVIDIA GeForce RTX 4090', 24_564, 1] },
  { w: 6, cpu: 32, memGb: 128, price: 800_000, gpu: ['4090', 'NVIDIA GeForce RTX 4090', 24_564, 2] },
  { w: 3, cpu: 64, memGb: 256, price: 1_500_000, gpu: ['4090', 'NVIDIA GeForce RTX 4090', 24_564, 4] },
  { w: 6, cpu: 8, memGb: 32, price: 300_000, gpu: ['L4', 'NVIDIA L4', 23_034, 1] },
  { w: 4, cpu: 16, memGb: 64, price: 450_000, gpu: ['A10', 'NVIDIA A10', 23_028, 1] },
  { w: 3, cpu: 64, memGb: 512, price: 4_000_000, gpu: ['A100', 'NVIDIA A100-SXM4-40GB', 40_960, 4] },
  { w: 2, cpu: 128, memGb: 1024, price: 12_000_000, gpu: ['A100', 'NVIDIA A100-SXM4-80GB', 81_920, 8] },
  { w: 2, cpu: 128, memGb: 2048, price: 20_000_000, gpu: ['H100', 'NVIDIA H100 80GB HBM3', 81_559, 8] },
]
const REGIONS = [
  { w: 25, r: 'us-east' },
  { w: 15, r: 'us-west' },
  { w: 20, r: 'eu-west' },
  { w: 15, r: 'eu-central' },
  { w: 10, r: 'ap-south' },
  { w: 15, r: 'ap-east' },
]
const FAMILIES = ['3090', '4090', 'L4', 'A10', 'A100', 'H100']

// Parsed once for the defaults; each job then overrides what it asks for (parsing 100,000 is slow).
const BASE_SPEC = JobSpec.parse({ image: 'kiln/matmul:1', maxPricePerHour: 1 })

interface Provider {
  input: ProviderInput
  family: string | undefined
  gpus: number
  cpu: number
  memMb: number
  vram: number
  price: number
  rep: number
}
interface BenchJob {
  id: string
  client: string
  priority: number
  createdAt: number
  index: number
  spec: JobSpec
  minReputation?: number
  exclude?: Address[]
  replicaOf?: number
  duration: number
}

function generate(providerCount: number, jobCount: number, seed: number) {
  const { rand, pick, weighted } = prng(seed)
  const providers: Provider[] = []
  for (let i = 0; i < providerCount; i++) {
    const m = weighted(MACHINES)
    const gpuCount = m.gpu?.[3] ?? 0
    const memMb = m.memGb * 1024
    const gpus = Array.from({ length: gpuCount }, (_, index) => ({ index, model: m.gpu![1], vramMb: m.gpu![2] }))
    // Prices in steps of 1,000 base units, so equal prices (and exact score ties) do happen.
    const price = Math.round((m.price * (0.7 + 0.7 * rand())) / 1000) * 1000
    const advert: CapacityAdvert = {
      peerId: `peer${i}`,
      addrs: [],
      seq: 1,
      region: weighted(REGIONS).r,
      version: '0.1.0',
      available: rand() < 0.98,
      pricePerHour: price,
      hardware: { cpuCores: m.cpu, memoryMb: memMb, diskMb: 500_000, gpus },
      free: { cpu: m.cpu, memoryMb: memMb, gpus: gpuCount },
    }
    const rep = Math.round((0.4 + 0.6 * Math.sqrt(rand())) * 100) / 100
    const address = `prov${String(i).padStart(6, '0')}` as Address
    // A third of the machines belong to operators who run several; replicas must avoid those.
    const operator = rand() < 0.3 ? `fleet${Math.floor(rand() * (providerCount / 20))}` : address
    const maxActiveJobs = gpuCount > 0 ? gpuCount : Math.max(1, m.cpu / 4)
    const input: ProviderInput = {
      address,
      advert,
      operator,
      reputation: rep,
      escrowReady: rand() < 0.97,
      maxActiveJobs,
    }
    providers.push({ input, family: m.gpu?.[0], gpus: gpuCount, cpu: m.cpu, memMb, vram: m.gpu?.[2] ?? 0, price, rep })
  }
  const stats = providers.map(() => ({ successRate: 0.85 + 0.15 * rand(), latencyMs: 5 + 295 * rand() }))
  const ready = providers.filter((p) => p.input.escrowReady && p.input.advert.available)
  const jobs: BenchJob[] = []
  for (let i = 0; i < jobCount; i++) {
    // Each job is cut to fit one real machine (its template), so every job can run somewhere.
    const t = pick(ready)
    const gpuJob = t.gpus > 0 && rand() < 0.7
    const count = gpuJob ? (rand() < 0.6 ? 1 : 1 + Math.floor(rand() * t.gpus)) : 0
    const models = !gpuJob || rand() < 0.2 ? [] : rand() < 0.75 ? [t.family!] : [t.family!, pick(FAMILIES)]
    const minVramMb =
      gpuJob && rand() < 0.5 ? pick([16_000, 20_000, 24_000, 40_000, 80_000].filter((v) => v <= t.vram)) : 0
    const share = gpuJob ? count / t.gpus : 1
    const cpu = Math.min(t.cpu * share, pick([0.5, 1, 2, 4, 8, 16]))
    const memoryMb = Math.max(256, Math.min(t.memMb * share, pick([512, 1024, 4096, 8192, 16_384, 65_536])))
    const spec: JobSpec = {
      ...BASE_SPEC,
      resources: { cpu, memoryMb, gpu: { count, models, minVramMb } },
      maxPricePerHour: Math.round(t.price * (1 + 2 * rand())),
      ...(rand() < 0.4 ? { region: t.input.advert.region } : {}),
    }
    const client = rand() < 0.3 ? 'client0' : `client${1 + Math.floor(rand() * 299)}`
    const job: BenchJob = {
      id: `j${i}`,
      client,
      priority: rand() < 0.1 ? 1 : 0,
      createdAt: i,
      index: i,
      spec,
      duration: Math.ceil(providerCount * (0.05 + 0.3 * rand())),
    }
    const floors = [0.5, 0.7, 0.8].filter((f) => f <= t.rep)
    if (rand() < 0.25 && floors.length) job.minReputation = pick(floors)
    if (rand() < 0.03)
      job.exclude = [pick(providers).input.address, pick(providers).input.address].filter((a) => a !== t.input.address)
    if (i > 0 && rand() < 0.05) job.replicaOf = Math.floor(rand() * i)
    jobs.push(job)
  }
  return { providers, stats, jobs }
}

interface RunResult {
  placed: number
  attempts: number
  noFit: number
  /** Placement passes: fairOrder over every waiting job, then place() in that order. */
  passes: number
  /** End to end: fair ordering, place, completions (without the baseline's mirrored work). */
  seconds: number
  /** Every place() call of the engine, placed or not. */
  ours: number[]
  /** The sampled baseline calls, and the engine's calls on exactly those attempts. */
  base: number[]
  oursOnSamples: number[]
  agreed: number
  examinedPerAttempt: number
}

/**
 * Places every job in fair order; job completions free capacity as they fall due. With
 * `every`, a baseline engine mirrors the engine's state (same adverts, same reservations) and
 * on every `every`-th attempt places the job itself, timed, and is checked against the engine.
 */
function run(world: ReturnType<typeof generate>, every?: number): RunResult {
  const engine = createMatchingEngine()
  const baseline = every ? createMatchingEngine({ strategy: 'scan' }) : undefined
  world.providers.forEach((p, i) => {
    for (const e of baseline ? [engine, baseline] : [engine]) {
      e.upsert(p.input)
      e.setStats(p.input.address, world.stats[i]!)
    }
  })
  const providerIndex = new Map(world.providers.map((p, i) => [p.input.address, i]))
  let waiting: readonly BenchJob[] = world.jobs
  const chosen = new Int32Array(world.jobs.length).fill(-1)
  const r: RunResult = {
    placed: 0,
    attempts: 0,
    noFit: 0,
    passes: 0,
    seconds: 0,
    ours: [],
    base: [],
    oursOnSamples: [],
    agreed: 0,
    examinedPerAttempt: 0,
  }
  const due = new Map<number, string[]>()
  let clock = 0
  let mirrorMs = 0
  const releaseDue = (at: number) => {
    for (const id of due.get(at) ?? []) {
      engine.release(id)
      if (!baseline) continue
      const t = performance.now()
      baseline.release(id)
      mirrorMs += performance.now() - t
    }
    due.delete(at)
  }
  const t0 = performance.now()
  while (waiting.length > 0) {
    const left: BenchJob[] = []
    const placedBefore = r.placed
    r.passes++
    for (const job of fairOrder(waiting)) {
      const opts: PlaceOptions = { explain: false }
      if (job.exclude) opts.exclude = job.exclude
      const primary = job.replicaOf === undefined ? -1 : chosen[job.replicaOf]!
      if (primary >= 0) opts.replicaOf = world.providers[primary]!.input.address
      const start = performance.now()
      const placed = engine.place(job, opts)
      const took = performance.now() - start
      r.ours.push(took)
      r.attempts++
      if (baseline) {
        const m0 = performance.now()
        if (r.attempts % every! === 0) {
          const b0 = performance.now()
          const b = baseline.place(job, opts)
          r.base.push(performance.now() - b0)
          r.oursOnSamples.push(took)
          const same = b.ok === placed.ok && (!b.ok || (placed.ok && b.provider.address === placed.provider.address))
          if (same) r.agreed++
          // On a disagreement, keep the mirror on the engine's choice so that the run goes on alike.
          else if (b.ok) baseline.release(job.id)
          if (placed.ok && !same) baseline.assign(job, placed.provider.address)
        } else if (placed.ok) baseline.assign(job, placed.provider.address)
        mirrorMs += performance.now() - m0
      }
      if (!placed.ok) {
        r.noFit++
        left.push(job)
        continue
      }
      r.placed++
      chosen[job.index] = providerIndex.get(placed.provider.address)!
      clock++
      const end = clock + job.duration
      const list = due.get(end)
      if (list) list.push(job.id)
      else due.set(end, [job.id])
      releaseDue(clock)
    }
    waiting = left
    if (r.placed === placedBefore && waiting.length > 0) {
      // Everything left waits for capacity: move the clock to the next completion.
      if (due.size === 0) throw new Error(`stuck with ${waiting.length} waiting jobs`)
      clock = Math.min(...due.keys())
      releaseDue(clock)
    }
  }
  r.seconds = (performance.now() - t0 - mirrorMs) / 1000
  r.examinedPerAttempt = engine.stats().examined / r.attempts
  return r
}

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0)
function quantile(xs: readonly number[], q: number): number {
  const sorted = Float64Array.from(xs).sort()
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN
}

const out = (line: string) => process.stdout.write(`${line}\n`)
const fmt = (n: number, digits = 0) => n.toFixed(digits)
const ms = (xs: readonly number[]) => `p50_ms=${fmt(quantile(xs, 0.5), 4)} p99_ms=${fmt(quantile(xs, 0.99), 4)}`

out(`scheduler bench: ${JOBS} queued jobs, seed ${SEED}, node ${process.version}`)
let last = ''
for (const providerCount of [1000, 10_000]) {
  const world = generate(providerCount, JOBS, SEED + providerCount)
  const gpuBoxes = world.providers.filter((p) => p.gpus > 0).length
  out(
    `\nproviders=${providerCount}: ${providerCount - gpuBoxes} CPU-only, ${gpuBoxes} with GPUs (${sum(world.providers.map((p) => p.gpus))} GPUs), ${REGIONS.length} regions`,
  )
  // Warm the JIT on a small throwaway run, so that timed placements are not interpreter-speed.
  run(generate(providerCount, 3000, SEED), 20)
  // The engine alone, for its own numbers; then again with the baseline, for the comparison.
  const ours = run(world)
  const every = SAMPLE_EVERY[providerCount] ?? 10
  const both = run(world, every)
  // The baseline's time for all attempts, estimated from its sampled calls.
  const baseS = ((sum(both.base) / both.base.length) * both.attempts) / 1000
  const basePerS = both.placed / baseS
  const oursPerS = ours.placed / ours.seconds
  // Conservative: the engine's end-to-end rate (fair ordering and completions included) over the baseline's place() alone.
  const ratio = oursPerS / basePerS
  const sameAttempts = sum(both.base) / sum(both.oursOnSamples)
  out(
    `  attempts=${ours.attempts} in ${ours.passes} placement passes (placed ${ours.placed}; ${ours.noFit} found no fit yet and waited for a later pass)`,
  )
  out(
    `  engine    placements_per_s=${fmt(oursPerS)} end to end (fairOrder, place, completions); ${fmt(ours.placed / (sum(ours.ours) / 1000))} in place() alone`,
  )
  out(
    `            place() ${ms(ours.ours)} over ${ours.ours.length} calls; providers examined per call: ${fmt(ours.examinedPerAttempt, 1)} of ${providerCount}`,
  )
  out(
    `  baseline  placements_per_s=${fmt(basePerS)} in place() alone, estimated from ${both.base.length} calls sampled over a second run (1 attempt in ${every})`,
  )
  out(`            place() ${ms(both.base)}; the engine on those same attempts: ${ms(both.oursOnSamples)}`)
  out(
    `  ratio=${fmt(ratio, 1)} (engine end to end / baseline); on the same attempts place() alone is ${fmt(sameAttempts, 1)}x faster`,
  )
  out(`  same outcome (provider, or no fit) on ${both.agreed}/${both.base.length} sampled attempts`)
  if (both.agreed !== both.base.length) {
    out('  WARNING: the engine and the baseline disagree; the index is wrong')
    process.exitCode = 1
  }
  last = `scheduler: providers=${providerCount} placements_per_s=${fmt(oursPerS)} baseline_per_s=${fmt(basePerS)} ratio=${fmt(ratio, 1)} p99_ms=${fmt(quantile(ours.ours, 0.99), 3)}`
}
out('')
out(last)
