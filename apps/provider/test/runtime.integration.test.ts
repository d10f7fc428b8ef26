import { execFileSync } from 'node:child_process'
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import type { Stats } from 'node:fs'
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
const spec = (over: Partial<JobSpecInput>): JobSpec =>
  JobSpec.parse({ image: 'kiln/busybox:1', maxPricePerHour: 1, timeoutSec: 15, ...over })
const sh = (script: string, over: Partial<JobSpecInput> = {}): JobSpec =>
  spec({ command: ['sh', '-c', script], ...over })
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

const MiB = 1024 * 1024

/** Bytes allocated on `dev` (the provider's disk) under `dir`: a mounted /out counts by its image. */
async function allocatedUnder(dir: string, dev: number): Promise<number> {
  let total = 0
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const s = await lstat(join(dir, e.name)).catch(() => undefined)
    if (!s || s.dev !== dev) continue
    total += s.blocks * 512
    if (e.isDirectory()) total += await allocatedUnder(join(dir, e.name), dev)
  }
  return total
}

/**
 * Samples, while a run goes on, the bytes on the provider's disk under workDir (the job dir,
 * its /out or the image behind it) and the job dir's and /out's owner and mode as the host sees them.
 */
function watchWorkDir() {
  const seen = { maxBytes: 0, samples: 0, jobDir: undefined as Stats | undefined, out: undefined as Stats | undefined }
  let running = true
  let started = false
  const loop = (async () => {
    while (running) {
      const dir = (await readdir(workDir)).find((n) => n.startsWith('kiln-job-'))
      if (dir) {
        seen.samples++
        seen.maxBytes = Math.max(seen.maxBytes, await allocatedUnder(workDir, (await stat(workDir)).dev))
        // As the job sees them: once it runs, /out is ready.
        if (started) seen.jobDir ??= await stat(join(workDir, dir)).catch(() => undefined)
        if (started) seen.out ??= await stat(join(workDir, dir, 'out')).catch(() => undefined)
      }
      await new Promise((r) => setTimeout(r, 20))
    }
  })()
  return {
    onStart: () => {
      started = true
    },
    stop: async () => {
      running = false
      await loop
      return seen
    },
  }
}

/** kiln/busybox with an /etc/passwd naming `app` (uid 4321), run as that user. */
async function buildNamedUserImage(): Promise<string> {
  const ref = 'kiln-test/named-user:1'
  const dir = await mkdtemp(join(tmpdir(), 'kiln-named-user-'))
  await writeFile(join(dir, 'passwd'), 'root:x:0:0:root:/:/bin/sh\napp:x:4321:4321:app:/:/bin/sh\n')
  await writeFile(join(dir, 'Dockerfile'), 'FROM kiln/busybox:1\nCOPY passwd /etc/passwd\nUSER app\n')
  execFileSync('docker', ['build', '-q', '-t', ref, dir], {
    stdio: 'pipe',
    env: { ...process.env, DOCKER_BUILDKIT: '0' },
  })
  await rm(dir, { recursive: true })
  return ref
}

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
    const r = await run(
      sh(
        [
          'echo "uid=$(id -u)"',
          'echo x > /x; echo "root=$?"',
          'echo x > /bin/x; echo "bin=$?"',
          'echo x > /tmp/x; echo "tmp=$?"',
          'cp /bin/busybox /tmp/bb && /tmp/bb true; echo "tmpexec=$?"',
          'mkdir /out/sub && echo ok > /out/sub/ok.txt; echo "out=$?"',
        ].join('\n'),
      ),
    )
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
    const r = await run(
      sh('i=0; while [ $i -lt 1000 ]; do sleep 30 & i=$((i+1)); echo $i > /out/count; done; echo all-started', {
        timeoutSec: 20,
      }),
    )
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
    const r = await run(
      sh('f() { f | f & }; f; sleep 2; echo survived', { timeoutSec: 6, resources: { cpu: 1, memoryMb: 128 } }),
    )
    expect(Date.now() - t0).toBeLessThan(15_000)
    expect(r.log).toContain("can't fork")
    // The host still forks and answers.
    expect(execFileSync('sh', ['-c', 'echo alive']).toString()).toBe('alive\n')
    expect(await rt.ping()).toMatchObject({ ok: true })
  }, 20_000)

  it('kills a memory hog at the memory limit', async () => {
    // exec: dd is the container's main process, so its death is the job's exit.
    const r = await run(
      sh('echo allocating; exec dd if=/dev/zero of=/dev/null bs=256M count=1', { resources: { cpu: 1, memoryMb: 64 } }),
    )
    expect(r).toMatchObject({ status: 'failed', stoppedBy: 'oom', exitCode: 137, error: { kind: 'CONTAINER_FAILED' } })
    expect(r.error?.message).toContain('ran out of memory (limit 64 MiB)')
    expect(process.memoryUsage().rss).toBeLessThan(1024 ** 3)
    // A killed helper is not the job's verdict: the main process exiting 0 still succeeds.
    const survived = await run(
      sh('dd if=/dev/zero of=/dev/null bs=256M count=1; echo "dd=$?"', { resources: { cpu: 1, memoryMb: 64 } }),
    )
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
    const r = await run(sh('sleep 30'), {
      signal: ac.signal,
      onStart: () => setTimeout(() => ac.abort('owner paused the provider'), 300),
    })
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
    const r = await run(sh('dd if=/dev/zero of=/out/big bs=1024 count=1536', { outputs: { maxBytes: 1024 * 1024 } }))
    expect(r).toMatchObject({ status: 'failed', exitCode: 0, output: null, error: { kind: 'OUTPUT_TOO_LARGE' } })
    expect(r.error?.message).toMatch(
      /^output exceeded outputs\.maxBytes=1048576: the content of \/out is 1572864 bytes/,
    )
  }, 20_000)

  it('stops a job writing past outputs.maxBytes while it runs, far short of filling the disk, in a folder only it can write', async () => {
    const peak = watchWorkDir()
    const t0 = Date.now()
    const r = await run(
      sh('dd if=/dev/zero of=/out/big bs=1M count=300; echo "dd=$?"; sleep 30', {
        outputs: { maxBytes: MiB },
        timeoutSec: 40,
      }),
      { onStart: peak.onStart },
    )
    const seen = await peak.stop()
    expect(r).toMatchObject({
      status: 'failed',
      stoppedBy: 'output',
      output: null,
      error: { kind: 'OUTPUT_TOO_LARGE' },
    })
    expect(r.error?.message).toMatch(
      /^output exceeded outputs\.maxBytes=1048576: the job put \d+ bytes in \/out and was stopped$/,
    )
    expect(Date.now() - t0).toBeLessThan(10_000) // stopped at the limit, not at the end of its sleep
    expect(r.log).toContain('No space left on device')
    expect(seen.samples).toBeGreaterThan(3)
    expect(seen.maxBytes).toBeGreaterThan(MiB)
    expect(seen.maxBytes).toBeLessThan(8 * MiB) // of the 300 MB it tried
    // Only the job's user writes /out; only the provider enters the job dir.
    expect(seen.out).toMatchObject({ uid: 65534 })
    expect(seen.out!.mode & 0o077).toBe(0)
    expect(seen.jobDir).toMatchObject({ uid: process.getuid!() })
    expect(seen.jobDir!.mode & 0o077).toBe(0)
  }, 30_000)

  it('without a filesystem of its own, /out is still watched: a job writing past the limit is stopped', async () => {
    const watched = createDockerRuntime({ docker, workDir, owner, ownOutputFs: false })
    const peak = watchWorkDir()
    const r = await watched.run({
      jobId: jobId(),
      spec: sh('i=0; while true; do dd if=/dev/zero of=/out/f$i bs=64k count=4 2>/dev/null; i=$((i+1)); done', {
        outputs: { maxBytes: MiB },
        timeoutSec: 30,
      }),
      onStart: peak.onStart,
    })
    const seen = await peak.stop()
    expect(r).toMatchObject({ status: 'failed', stoppedBy: 'output', error: { kind: 'OUTPUT_TOO_LARGE' } })
    expect(r.error?.message).toMatch(/^output exceeded outputs\.maxBytes=1048576: /)
    expect(r.containerSeconds).toBeLessThan(10)
    expect(seen.maxBytes).toBeLessThan(300 * MiB)
    expect(seen.out).toMatchObject({ uid: 65534 })
    expect(seen.out!.mode & 0o077).toBe(0)
  }, 40_000)

  it("gives /out to an image's own named user", async () => {
    const image = await buildNamedUserImage()
    const r = await run(sh('id -u > /out/uid; echo ok > /out/ok', { image }))
    expect(r).toMatchObject({ status: 'succeeded', exitCode: 0 })
    const dest = join(workDir, 'unpacked-named')
    await unpackTar(r.output!.tar, dest)
    expect(await readFile(join(dest, 'uid'), 'utf8')).toBe('4321\n')
    await rm(dest, { recursive: true })
  }, 30_000)

  it('fails a missing image with IMAGE_NOT_FOUND', async () => {
    const r = await run(spec({ image: 'kiln/does-not-exist:1' }))
    expect(r).toMatchObject({
      status: 'failed',
      exitCode: null,
      startedAt: null,
      output: null,
      error: { kind: 'IMAGE_NOT_FOUND' },
    })
    expect(r.error?.message).toMatch(/^image kiln\/does-not-exist:1 is not present locally and could not be pulled: .+/)
    await expect(rt.ensureImage('kiln/does-not-exist:1')).rejects.toMatchObject({ kind: 'IMAGE_NOT_FOUND' })
    expect(await rt.hasImage('kiln/busybox:1')).toBe(true)
  }, 30_000)

  it('reconcile removes leftover labelled containers and job dirs, and nothing else', async () => {
    const leftover = await docker.createContainer({
      Image: 'kiln/busybox:1',
      Cmd: ['sleep', '30'],
      Labels: { 'kiln.managed': '1', 'kiln.job': 'job_leftover000', 'kiln.owner': owner },
      HostConfig: { NetworkMode: 'none' },
    })
    await leftover.start()
    const foreign = await docker.createContainer({
      Image: 'kiln/busybox:1',
      Cmd: ['sleep', '30'],
      HostConfig: { NetworkMode: 'none' },
    })
    // Another provider's job on the same engine: not a leftover of ours.
    const neighbour = await docker.createContainer({
      Image: 'kiln/busybox:1',
      Cmd: ['sleep', '30'],
      Labels: { 'kiln.managed': '1', 'kiln.job': 'job_neighbour000', 'kiln.owner': 'someone-else' },
      HostConfig: { NetworkMode: 'none' },
    })
    const staleDir = join(workDir, 'kiln-job-job_leftover000-abc123')
    await mkdir(join(staleDir, 'out'), { recursive: true })
    // A crash mid-run leaves the job's own /out filesystem mounted.
    const mountedDir = join(workDir, 'kiln-job-job_leftover001-def456')
    await mkdir(join(mountedDir, 'out'), { recursive: true })
    execFileSync('sh', [
      '-c',
      `truncate -s 4M ${mountedDir}/out.img && mkfs.ext4 -q -F ${mountedDir}/out.img && mount -o loop ${mountedDir}/out.img ${mountedDir}/out && echo x > ${mountedDir}/out/x`,
    ])
    try {
      const { removed } = await rt.reconcile()
      const leftoverName = (await leftover.inspect().catch(() => null))?.Name
      expect(leftoverName).toBeUndefined()
      expect(removed).toHaveLength(1)
      expect((await foreign.inspect()).Id).toBe(foreign.id)
      expect((await neighbour.inspect()).Id).toBe(neighbour.id)
      expect(await readdir(workDir)).not.toContain('kiln-job-job_leftover000-abc123')
      expect(await readdir(workDir)).not.toContain('kiln-job-job_leftover001-def456')
      expect(await readFile('/proc/self/mounts', 'utf8')).not.toContain(mountedDir)
    } finally {
      await foreign.remove({ force: true })
      await neighbour.remove({ force: true })
      await leftover.remove({ force: true }).catch(() => {})
    }
  }, 20_000)
})
