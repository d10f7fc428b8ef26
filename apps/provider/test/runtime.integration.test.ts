import { execFileSync } from 'node:child_process'
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import Dockerode from 'dockerode'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { JobSpec, randomHex, sha256Hex, type JobSpecInput } from '@kiln/protocol'
import { unpackTar } from '@kiln/artifacts'
import { createDockerRuntime, type DockerRuntime, type RunRequest } from '../src/runtime/index.ts'

// Real engine, real containers: this is the sandbox the provider trusts with strangers' code.
const ROOT = resolve(import.meta.dirname, '../../..')
const docker = new Dockerode({ socketPath: '/var/run/docker.sock' })
let workDir: string
let rt: DockerRuntime

const jobId = (): string => `job_${randomHex(8)}`
const spec = (over: Partial<JobSpecInput>): JobSpec => JobSpec.parse({ image: 'kiln/busybox:1', maxPricePerHour: 1, timeoutSec: 15, ...over })
const sh = (script: string, over: Partial<JobSpecInput> = {}): JobSpec => spec({ command: ['sh', '-c', script], ...over })
const run = (s: JobSpec, extra: Partial<RunRequest> = {}) => rt.run({ jobId: jobId(), spec: s, ...extra })

// Containers carry their provider; other tests' providers may share this engine meanwhile.
const owner = `runtime-test-${randomHex(4)}`

async function managedContainers(): Promise<string[]> {
  const list = await docker.listContainers({ all: true, filters: { label: ['kiln.managed=1', `kiln.owner=${owner}`] } })
  return list.map((c) => c.Names[0] ?? c.Id)
}

beforeAll(async () => {
  // Builds only the images that are missing; a few seconds the first time.
  execFileSync('bash', [join(ROOT, 'scripts/build-images.sh')], { stdio: 'pipe' })
  workDir = await mkdtemp(join(tmpdir(), 'kiln-runtime-it-'))
  rt = createDockerRuntime({ docker, workDir, maxLogBytes: 64 * 1024, stopGraceSec: 1, owner })
})

afterEach(async () => {
  // Every run cleans up after itself, whatever happened in it.
  expect(await managedContainers()).toEqual([])
  expect((await readdir(workDir)).filter((n) => n.startsWith('kiln-job-'))).toEqual([])
})

afterAll(async () => {
  if (workDir) await rm(workDir, { recursive: true, force: true })
})

describe('docker runtime', () => {
  it('pings the engine, and says where it looked when it cannot', async () => {
    expect(await rt.ping()).toMatchObject({ ok: true })
    const lost = createDockerRuntime({ docker: new Dockerode({ socketPath: '/nonexistent/docker.sock' }), workDir })
    const p = await lost.ping()
    expect(p.ok).toBe(false)
    if (!p.ok) expect(p.reason).toMatch(/cannot reach the Docker engine at \/nonexistent\/docker\.sock: .*ENOENT/)
    const r = await lost.run({ jobId: jobId(), spec: spec({}) })
    expect(r).toMatchObject({ status: 'failed', error: { kind: 'DOCKER_UNAVAILABLE' }, startedAt: null, output: null })
  })

  it('runs matmul to success, deterministically, streaming its logs', async () => {
    const s = spec({ image: 'kiln/matmul:1', command: ['128'] })
    let streamed = ''
    let started: number | null = null
    const first = await run(s, { onLog: (_stream, text) => (streamed += text), onStart: (t) => (started = t) })
    const second = await run(s)

    expect(first).toMatchObject({ status: 'succeeded', exitCode: 0, logTruncated: false })
    expect(first.error).toBeUndefined()
    expect(first.startedAt).toBe(started)
    expect(first.containerSeconds).toBeGreaterThan(0)
    expect(streamed).toContain('progress: 128/128 rows (100%)')
    expect(first.logDigest).toBe(sha256Hex(streamed))
    expect(first.logBytes).toBe(Buffer.byteLength(streamed))
    expect(first.log).toBe(streamed)

    expect(first.output).not.toBeNull()
    expect(second.output?.digest).toBe(first.output?.digest)
    const dest = join(workDir, 'unpacked-matmul')
    expect(await unpackTar(first.output!.tar, dest)).toMatchObject({ files: 2 })
    const npy = await readFile(join(dest, 'result.npy'))
    expect(npy.subarray(0, 6).toString('latin1')).toBe('\x93NUMPY')
    expect(npy.toString('latin1', 10, 80)).toContain("'shape': (128, 128)")
    const headerLen = npy.readUInt16LE(8)
    expect((10 + headerLen) % 64).toBe(0)
    expect(npy.length).toBe(10 + headerLen + 128 * 128 * 4)
    expect(JSON.parse(await readFile(join(dest, 'summary.json'), 'utf8'))).toMatchObject({ n: 128 })
    await rm(dest, { recursive: true })
  }, 30_000)

  it('renders a PNG', async () => {
    const r = await run(spec({ image: 'kiln/render:1', command: ['64', '48'] }))
    expect(r.status).toBe('succeeded')
    const dest = join(workDir, 'unpacked-render')
    await unpackTar(r.output!.tar, dest)
    const png = await readFile(join(dest, 'render.png'))
    expect(png.subarray(0, 8).toString('latin1')).toBe('\x89PNG\r\n\x1a\n')
    await rm(dest, { recursive: true })
  }, 20_000)

  it('can write only to /out (and /tmp, which cannot execute)', async () => {
    const r = await run(sh([
      'echo "uid=$(id -u)"',
      'echo x > /x; echo "root=$?"',
      'echo x > /bin/x; echo "bin=$?"',
      'echo x > /tmp/x; echo "tmp=$?"',
      'cp /bin/busybox /tmp/bb && /tmp/bb true; echo "tmpexec=$?"',
      'mkdir /out/sub && echo ok > /out/sub/ok.txt; echo "out=$?"',
    ].join('\n')))
    expect(r.status).toBe('succeeded')
    expect(r.log).toContain('uid=65534')
    expect(r.log).toMatch(/root=[1-9]/)
    expect(r.log).toMatch(/bin=[1-9]/)
    expect(r.log).toContain('tmp=0')
    expect(r.log).toMatch(/tmpexec=[1-9]/)
    expect(r.log).toContain('out=0')
    expect(r.output?.files).toBe(1)
    const dest = join(workDir, 'unpacked-out')
    await unpackTar(r.output!.tar, dest)
    expect(await readFile(join(dest, 'sub/ok.txt'), 'utf8')).toBe('ok\n')
    await rm(dest, { recursive: true })
  }, 20_000)

  it('caps processes at the pids limit', async () => {
    // Each `sleep &` is one process; the counter is written without forking.
    const r = await run(sh('i=0; while [ $i -lt 1000 ]; do sleep 30 & i=$((i+1)); echo $i > /out/count; done; echo all-started', { timeoutSec: 20 }))
    expect(r.status).toBe('failed')
    expect(r.log).toContain("can't fork")
    expect(r.log).not.toContain('all-started')
    const dest = join(workDir, 'unpacked-pids')
    await unpackTar(r.output!.tar, dest)
    const count = Number((await readFile(join(dest, 'count'), 'utf8')).trim())
    expect(count).toBeGreaterThan(100)
    expect(count).toBeLessThan(256)
    await rm(dest, { recursive: true })
  }, 25_000)

  it('contains a fork bomb, and the host is unharmed', async () => {
    const t0 = Date.now()
    const r = await run(sh('f() { f | f & }; f; sleep 2; echo survived', { timeoutSec: 6, resources: { cpu: 1, memoryMb: 128 } }))
    expect(Date.now() - t0).toBeLessThan(15_000)
    expect(r.log).toContain("can't fork")
    // The host still forks and answers.
    expect(execFileSync('sh', ['-c', 'echo alive']).toString()).toBe('alive\n')
    expect(await rt.ping()).toMatchObject({ ok: true })
  }, 20_000)

  it('kills a memory hog at the memory limit', async () => {
    // exec: dd is the container's main process, so its death is the job's exit.
    const r = await run(sh('echo allocating; exec dd if=/dev/zero of=/dev/null bs=256M count=1', { resources: { cpu: 1, memoryMb: 64 } }))
    expect(r).toMatchObject({ status: 'failed', stoppedBy: 'oom', exitCode: 137, error: { kind: 'CONTAINER_FAILED' } })
    expect(r.error?.message).toContain('ran out of memory (limit 64 MiB)')
    expect(process.memoryUsage().rss).toBeLessThan(1024 ** 3)
    // A killed helper is not the job's verdict: the main process exiting 0 still succeeds.
    const survived = await run(sh('dd if=/dev/zero of=/dev/null bs=256M count=1; echo "dd=$?"', { resources: { cpu: 1, memoryMb: 64 } }))
    expect(survived).toMatchObject({ status: 'succeeded', exitCode: 0 })
    expect(survived.log).toContain('dd=137')
  }, 20_000)

  it('kills a job at its timeout', async () => {
    const t0 = Date.now()
    const r = await run(sh('echo sleeping; sleep 30', { timeoutSec: 2 }))
    expect(Date.now() - t0).toBeLessThan(10_000)
    expect(r).toMatchObject({ status: 'failed', stoppedBy: 'timeout', error: { kind: 'CONTAINER_TIMEOUT' } })
    expect(r.error?.message).toContain('timeout of 2 s')
    expect(r.containerSeconds).toBeGreaterThanOrEqual(1.9)
    expect(r.containerSeconds).toBeLessThan(6)
    expect(r.log).toContain('sleeping')
  }, 20_000)

  it('stops a job when the signal aborts', async () => {
    const ac = new AbortController()
    const r = await run(sh('sleep 30'), { signal: ac.signal, onStart: () => setTimeout(() => ac.abort('owner paused the provider'), 300) })
    expect(r).toMatchObject({ status: 'failed', stoppedBy: 'abort', error: { kind: 'CONTAINER_FAILED' } })
    expect(r.error?.message).toContain('owner paused the provider')
    expect(r.containerSeconds).toBeLessThan(5)
  }, 20_000)

  it('reports a non-zero exit with its code', async () => {
    const r = await run(sh('echo oops >&2; exit 3'))
    expect(r).toMatchObject({ status: 'failed', exitCode: 3, error: { kind: 'CONTAINER_FAILED' } })
    expect(r.error?.message).toContain('exited with code 3')
    expect(r.log).toContain('oops')
  }, 20_000)

  it('refuses outputs over outputs.maxBytes', async () => {
    const r = await run(sh('dd if=/dev/zero of=/out/big bs=1024 count=2048', { outputs: { maxBytes: 1024 * 1024 } }))
    expect(r).toMatchObject({ status: 'failed', exitCode: 0, output: null, error: { kind: 'OUTPUT_TOO_LARGE' } })
  }, 20_000)

  it('fails a missing image with IMAGE_NOT_FOUND', async () => {
    const r = await run(spec({ image: 'kiln/does-not-exist:1' }))
    expect(r).toMatchObject({ status: 'failed', exitCode: null, startedAt: null, output: null, error: { kind: 'IMAGE_NOT_FOUND' } })
    expect(r.error?.message).toMatch(/^image kiln\/does-not-exist:1 is not present locally and could not be pulled: .+/)
    await expect(rt.ensureImage('kiln/does-not-exist:1')).rejects.toMatchObject({ kind: 'IMAGE_NOT_FOUND' })
    expect(await rt.hasImage('kiln/busybox:1')).toBe(true)
  }, 30_000)

  it('reconcile removes leftover labelled containers and job dirs, and nothing else', async () => {
    const leftover = await docker.createContainer({ Image: 'kiln/busybox:1', Cmd: ['sleep', '30'], Labels: { 'kiln.managed': '1', 'kiln.job': 'job_leftover000', 'kiln.owner': owner }, HostConfig: { NetworkMode: 'none' } })
    await leftover.start()
    const foreign = await docker.createContainer({ Image: 'kiln/busybox:1', Cmd: ['sleep', '30'], HostConfig: { NetworkMode: 'none' } })
    // Another provider's job on the same engine: not a leftover of ours.
    const neighbour = await docker.createContainer({ Image: 'kiln/busybox:1', Cmd: ['sleep', '30'], Labels: { 'kiln.managed': '1', 'kiln.job': 'job_neighbour000', 'kiln.owner': 'someone-else' }, HostConfig: { NetworkMode: 'none' } })
    const staleDir = join(workDir, 'kiln-job-job_leftover000-abc123')
    await mkdir(join(staleDir, 'out'), { recursive: true })
    try {
      const { removed } = await rt.reconcile()
      const leftoverName = (await leftover.inspect().catch(() => null))?.Name
      expect(leftoverName).toBeUndefined()
      expect(removed).toHaveLength(1)
      expect((await foreign.inspect()).Id).toBe(foreign.id)
      expect((await neighbour.inspect()).Id).toBe(neighbour.id)
      expect(await readdir(workDir)).not.toContain('kiln-job-job_leftover000-abc123')
    } finally {
      await foreign.remove({ force: true })
      await neighbour.remove({ force: true })
      await leftover.remove({ force: true }).catch(() => {})
    }
  }, 20_000)
})
