import { execFileSync } from 'node:child_process'
import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, dirname, join, resolve } from 'node:path'
import Dockerode from 'dockerode'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { escrowIdFor, Identity, JobSpec, randomHex, sha256Hex, type Lease } from '@kiln/protocol'
import { JobJournal } from '../src/journal.ts'
import { recoverJobs } from '../src/recovery.ts'
import { buildContainerOptions, createDockerRuntime, LABEL_OWNER, LOG_FILES } from '../src/runtime/index.ts'

// Real engine: the json-file logs that fill a provider's disk are the engine's own files.
const ROOT = resolve(import.meta.dirname, '../../..')
const docker = new Dockerode({ socketPath: '/var/run/docker.sock' })
const owner = Identity.generate().address
const MiB = 1024 * 1024
/** Small, so that a few MB of output is well over it. */
const FILE_CAP = MiB
const LINE = 'abcdefghijklmnopqrstuvwxyz0123456789\n'
/** 24 MiB of output: twelve times what the engine may keep (LOG_FILES files of FILE_CAP). */
const PRINTED = 24 * MiB
const PRINT = `yes ${LINE.trim()} | head -c ${PRINTED}`
const expected = () => LINE.repeat(Math.ceil(PRINTED / LINE.length)).slice(0, PRINTED)
let dataDir: string

const spec = (script: string) =>
  JobSpec.parse({
    image: 'kiln/busybox:1',
    command: ['sh', '-c', script],
    maxPricePerHour: 1_000_000,
    timeoutSec: 120,
    resources: { cpu: 1, memoryMb: 128 },
  })

/** The bytes of the engine's log files for a container (the live one and its rotated ones). */
async function logFileBytes(id: string): Promise<number> {
  const path = (await docker.getContainer(id).inspect()).LogPath
  if (!path) return 0
  let total = 0
  for (const name of await readdir(dirname(path)))
    if (name.startsWith(basename(path)))
      total += (await stat(join(dirname(path), name)).catch(() => ({ size: 0 }))).size
  return total
}

async function ours(): Promise<string[]> {
  return (await docker.listContainers({ all: true, filters: { label: [`${LABEL_OWNER}=${owner}`] } })).map((c) => c.Id)
}

beforeAll(async () => {
  execFileSync('bash', [join(ROOT, 'scripts/build-images.sh')], { stdio: 'pipe' })
  dataDir = await mkdtemp(join(tmpdir(), 'kiln-log-cap-it-'))
  await mkdir(join(dataDir, 'work'))
})
afterAll(async () => {
  for (const id of await ours())
    await docker
      .getContainer(id)
      .remove({ force: true })
      .catch(() => {})
  if (dataDir) await rm(dataDir, { recursive: true, force: true })
})

describe("the engine's log files of a job container", () => {
  it('stay under the cap while the job prints far more, and the run still streams and hashes every byte', async () => {
    const rt = createDockerRuntime({
      docker,
      workDir: join(dataDir, 'work'),
      owner,
      maxLogBytes: 64 * 1024,
      logFileMaxBytes: FILE_CAP,
    })
    let streamed = 0
    let biggest = 0
    let samples = 0
    let running = true
    // The engine's files, sampled while the job runs; the sleep keeps the container until its log is all written.
    const sampling = (async () => {
      while (running) {
        for (const id of await ours()) {
          const bytes = await logFileBytes(id).catch(() => 0)
          if (bytes > 0) samples++
          biggest = Math.max(biggest, bytes)
        }
        await new Promise((r) => setTimeout(r, 50))
      }
    })()
    const result = await rt.run({
      jobId: `job_${randomHex(8)}`,
      spec: spec(`${PRINT}; sleep 1.5`),
      onLog: (_s, text) => {
        streamed += Buffer.byteLength(text)
      },
    })
    running = false
    await sampling
    expect(result).toMatchObject({ status: 'succeeded', logBytes: PRINTED })
    expect(result.logDigest).toBe(sha256Hex(expected()))
    expect(streamed).toBe(PRINTED)
    expect(samples).toBeGreaterThan(0)
    // A file is rotated before an entry would take it past the cap; one entry is at most 16 KiB of output.
    expect(biggest).toBeGreaterThan(FILE_CAP / 2)
    expect(biggest).toBeLessThanOrEqual(LOG_FILES * FILE_CAP)
  }, 120_000)

  it('crash recovery, reading a finished container back from those files, says its log digest covers only what they kept', async () => {
    const journal = new JobJournal(dataDir)
    const lease = (script: string): Lease => {
      const jobId = `job_${randomHex(6)}`
      return {
        jobId,
        client: Identity.generate().address,
        provider: owner,
        arbiter: Identity.generate().address,
        spec: spec(script),
        pricePerHour: 360_000,
        lockAmount: 12_000,
        mint: Identity.generate().address,
        multisig: Identity.generate().address,
        vault: Identity.generate().address,
        escrowId: escrowIdFor(jobId, 1),
        startBy: Date.now() + 60_000,
        bond: 0,
        feeBps: 0,
      }
    }
    const loud = lease(PRINT)
    const quiet = lease('echo small')
    for (const l of [loud, quiet]) {
      journal.put({ lease: l, state: 'running', acceptedAt: Date.now(), startedAt: Date.now() })
      const out = await mkdtemp(join(dataDir, 'work', `kiln-job-${l.jobId}-`))
      const c = await docker.createContainer({
        name: `kiln-${l.jobId}-${randomHex(3)}`,
        ...buildContainerOptions(l.jobId, l.spec, out, undefined, { owner, logFileMaxBytes: FILE_CAP }),
      })
      await c.start()
      await c.wait()
      expect(await logFileBytes(c.id)).toBeLessThanOrEqual(LOG_FILES * FILE_CAP)
    }
    const runtime = createDockerRuntime({ docker, workDir: join(dataDir, 'work'), owner, logFileMaxBytes: FILE_CAP })
    const report = await recoverJobs({
      journal,
      runtime,
      provider: owner,
      resultsDir: join(dataDir, 'results'),
      log: { info() {}, warn() {} },
    })
    expect(report.finished.sort()).toEqual([loud.jobId, quiet.jobId].sort())
    const loudReceipt = journal.get(loud.jobId)!.receipt!
    expect(loudReceipt).toMatchObject({ status: 'succeeded', logPartial: true })
    expect(loudReceipt.logBytes).toBeLessThan(PRINTED)
    const quietReceipt = journal.get(quiet.jobId)!.receipt!
    expect(quietReceipt).toMatchObject({ logDigest: sha256Hex('small\n'), logBytes: 6 })
    expect(quietReceipt.logPartial).toBeUndefined()
  }, 120_000)
})
