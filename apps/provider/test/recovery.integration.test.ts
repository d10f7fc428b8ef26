import { execFileSync } from 'node:child_process'
import { chmod, mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import Dockerode from 'dockerode'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { escrowIdFor, Identity, JobSpec, randomHex, sha256Hex, type Lease } from '@kiln/protocol'
import { unpackTar } from '@kiln/artifacts'
import { JobJournal } from '../src/journal.ts'
import { RESTART_REASON, recoverJobs } from '../src/recovery.ts'
import { buildContainerOptions, createDockerRuntime, LABEL_OWNER } from '../src/runtime/index.ts'
import { jobView } from '../src/control-views.ts'

// Real engine: the containers a killed daemon leaves behind are real containers.
const ROOT = resolve(import.meta.dirname, '../../..')
const docker = new Dockerode({ socketPath: '/var/run/docker.sock' })
const owner = Identity.generate().address
let dataDir: string

const lease = (jobId: string, script: string): Lease => ({
  jobId,
  client: Identity.generate().address,
  provider: owner,
  arbiter: Identity.generate().address,
  spec: JobSpec.parse({
    image: 'kiln/busybox:1',
    command: ['sh', '-c', script],
    maxPricePerHour: 1_000_000,
    timeoutSec: 120,
  }),
  pricePerHour: 360_000,
  lockAmount: 12_000,
  mint: Identity.generate().address,
  multisig: Identity.generate().address,
  vault: Identity.generate().address,
  escrowId: escrowIdFor(jobId, 1),
  startBy: Date.now() + 60_000,
  bond: 0,
  feeBps: 0,
})

/** What runJob does up to the point a SIGKILLed daemon would stop: a job dir, a started container. */
async function leaveBehind(l: Lease, opts: { wait?: boolean; start?: boolean } = {}): Promise<string> {
  const dir = await mkdtemp(join(dataDir, 'work', `kiln-job-${l.jobId}-`))
  const out = join(dir, 'out')
  await mkdir(out)
  await chmod(out, 0o777)
  const c = await docker.createContainer({
    name: `kiln-${l.jobId}-${randomHex(3)}`,
    ...buildContainerOptions(l.jobId, l.spec, out, undefined, { owner }),
  })
  if (opts.start !== false) await c.start()
  if (opts.wait) await c.wait()
  return c.id
}

async function ours(): Promise<string[]> {
  const list = await docker.listContainers({ all: true, filters: { label: [`${LABEL_OWNER}=${owner}`] } })
  return list.map((c) => c.Id)
}

beforeAll(async () => {
  execFileSync('bash', [join(ROOT, 'scripts/build-images.sh')], { stdio: 'pipe' })
  dataDir = await mkdtemp(join(tmpdir(), 'kiln-recovery-it-'))
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

describe('crash recovery', () => {
  it("reports a finished container's result, fails an unfinished one with its reason, and leaves nothing running", async () => {
    const journal = new JobJournal(dataDir)
    const now = Date.now()
    const finished = lease(
      `job_${randomHex(6)}fin`,
      'echo computing; sleep 0.3; echo 42 > /out/answer.txt; echo oops >&2',
    )
    const running = lease(`job_${randomHex(6)}run`, 'echo started; sleep 120')
    const gone = lease(`job_${randomHex(6)}gone`, 'true')
    const failedExit = lease(`job_${randomHex(6)}exit`, 'echo bad; exit 3')
    const settled = lease(`job_${randomHex(6)}done`, 'true')
    for (const l of [finished, running, failedExit])
      journal.put({ lease: l, state: 'running', acceptedAt: now, startedAt: now })
    journal.put({ lease: gone, state: 'accepted', acceptedAt: now })
    journal.put({ lease: settled, state: 'finished', acceptedAt: now, delivered: true })
    await leaveBehind(finished, { wait: true })
    await leaveBehind(running)
    await leaveBehind(failedExit, { wait: true })
    const stray = await leaveBehind(lease(`job_${randomHex(6)}stray`, 'sleep 120'))
    // Another provider's container on the same engine is not ours to touch.
    const neighbour = await docker.createContainer({
      Image: 'kiln/busybox:1',
      Cmd: ['sleep', '120'],
      Labels: { 'kiln.managed': '1', 'kiln.job': 'job_neighbour0000', [LABEL_OWNER]: Identity.generate().address },
    })
    await neighbour.start()

    const runtime = createDockerRuntime({ docker, workDir: join(dataDir, 'work'), owner })
    const report = await recoverJobs({
      journal,
      runtime,
      provider: owner,
      resultsDir: join(dataDir, 'results'),
      log: { info() {}, warn() {} },
    })

    expect(report.finished.sort()).toEqual([finished.jobId, failedExit.jobId].sort())
    expect(report.failed.sort()).toEqual([running.jobId, gone.jobId].sort())
    expect(report.removed).toHaveLength(4)
    expect(await ours()).toEqual([])
    expect((await readdir(join(dataDir, 'work'))).filter((n) => n.startsWith('kiln-job-'))).toEqual([])
    expect((await docker.getContainer(neighbour.id).inspect()).State.Running).toBe(true)
    await neighbour.remove({ force: true })
    expect(stray).toBeTruthy()

    // Read back from disk, as the next start would.
    const again = new JobJournal(dataDir)
    const fin = again.get(finished.jobId)!
    expect(fin).toMatchObject({
      state: 'finished',
      delivered: false,
      receipt: { status: 'succeeded', exitCode: 0, provider: owner },
    })
    // The engine keeps stdout and stderr apart; across the two, the order is the engine's.
    expect([sha256Hex('computing\noops\n'), sha256Hex('oops\ncomputing\n')]).toContain(fin.receipt!.logDigest)
    expect(fin.receipt!.logBytes).toBe(15)
    expect(fin.receipt!.containerSeconds).toBeGreaterThan(0.25)
    const tar = await readFile(fin.outputPath!)
    expect(sha256Hex(tar)).toBe(fin.receipt!.outputDigest)
    await unpackTar(tar, join(dataDir, 'unpacked'))
    expect(await readFile(join(dataDir, 'unpacked', 'answer.txt'), 'utf8')).toBe('42\n')

    expect(again.get(failedExit.jobId)).toMatchObject({
      state: 'finished',
      receipt: {
        status: 'failed',
        exitCode: 3,
        error: { code: 'KILN_5002', message: 'the container exited with code 3' },
      },
    })
    expect(again.get(running.jobId)).toMatchObject({
      state: 'failed',
      error: `${RESTART_REASON}: its container was still running and was stopped`,
    })
    expect(again.get(gone.jobId)).toMatchObject({ state: 'failed', error: `${RESTART_REASON}: its container was gone` })
    expect(again.get(settled.jobId)).toMatchObject({ state: 'finished', delivered: true })

    // What GET /api/jobs shows for them.
    expect(jobView(again.get(running.jobId)!)).toMatchObject({
      status: 'failed',
      error: expect.stringContaining(RESTART_REASON),
      earned: 0,
    })
    expect(jobView(fin)).toMatchObject({
      status: 'succeeded',
      delivered: false,
      earned: 0,
      recoveredAt: expect.any(Number),
    })

    // A second start finds nothing more to do.
    expect(
      await recoverJobs({
        journal: again,
        runtime,
        provider: owner,
        resultsDir: join(dataDir, 'results'),
        log: { info() {}, warn() {} },
      }),
    ).toEqual({ finished: [], failed: [], removed: [] })
  })
})
