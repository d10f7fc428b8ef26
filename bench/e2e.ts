/**
 * `npm run bench:e2e`: for the sample job, how long from submit to container start and from
 * submit to settled on chain, next to a plain `docker run` of the same image in the same run.
 */
import { execFileSync } from 'node:child_process'
import { Identity } from '@kiln/protocol'
import { createKilnClient } from '@kiln/sdk'
import { startNetwork } from '../test/support/network.ts'

const RUNS = Number(process.env.BENCH_RUNS ?? 5)
const spec = {
  image: 'kiln/matmul:1',
  command: ['256'],
  resources: { cpu: 1, memoryMb: 256 },
  maxPricePerHour: 1_000_000,
  timeoutSec: 120,
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN

const dockerMs: number[] = []
for (let i = 0; i < RUNS; i++) {
  const t = performance.now()
  execFileSync(
    'docker',
    ['run', '--rm', '--network', 'none', '--memory', '256m', '--cpus', '1', spec.image, ...spec.command],
    { stdio: 'ignore' },
  )
  dockerMs.push(performance.now() - t)
}

const net = await startNetwork({ providers: 1 })
const startMs: number[] = []
const settleMs: number[] = []
try {
  const id = Identity.generate()
  await net.fund(id.address, { lamports: 2_000_000_000, tokens: 100_000_000 })
  const kiln = createKilnClient({ url: net.api, identity: id })
  for (let i = 0; i < RUNS; i++) {
    const t = Date.now()
    const { jobId } = await kiln.submit(spec)
    const job = await kiln.watch(jobId, { pollMs: 50 })
    if (job.state !== 'done' || !job.startedAt)
      throw new Error(`bench job ${jobId} ended ${job.state}: ${job.error?.message ?? ''}`)
    startMs.push(job.startedAt - t)
    settleMs.push(Date.now() - t)
    process.stdout.write(
      `run ${i + 1}/${RUNS}: submit→start ${job.startedAt - t} ms, submit→settled ${Date.now() - t} ms\n`,
    )
  }
} finally {
  await net.stop()
}

const row = (k: string, xs: number[]) =>
  `${k.padEnd(28)} median ${median(xs).toFixed(0).padStart(6)} ms   min ${Math.min(...xs)
    .toFixed(0)
    .padStart(6)} ms   max ${Math.max(...xs)
    .toFixed(0)
    .padStart(6)} ms`
process.stdout.write(
  `\n${row('plain docker run', dockerMs)}\n${row('kiln submit→container start', startMs)}\n${row('kiln submit→settled', settleMs)}\n`,
)
process.stdout.write(`ratio settled/docker_run: ${(median(settleMs) / median(dockerMs)).toFixed(1)}x\n`)
process.stdout.write(
  `e2e: start_overhead_ms=${median(startMs).toFixed(0)} settle_ms=${median(settleMs).toFixed(0)} docker_run_ms=${median(dockerMs).toFixed(0)}\n`,
)
