import { execFileSync } from 'node:child_process'
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative, resolve } from 'node:path'
import Dockerode from 'dockerode'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { JobSpec, randomHex, sha256Hex, type JobSpecInput } from '@kiln/protocol'
import { unpackTar } from '@kiln/artifacts'
import { createDockerRuntime, type DockerRuntime } from '../src/runtime/index.ts'

// Real engine, real containers: inputs, secrets and GPU refusals as a job meets them.
const ROOT = resolve(import.meta.dirname, '../../..')
const docker = new Dockerode({ socketPath: '/var/run/docker.sock' })
const owner = `runtime-inputs-test-${randomHex(4)}`
let workDir: string
let inputs: string
let rt: DockerRuntime

const jobId = (): string => `job_${randomHex(8)}`
const sh = (script: string, over: Partial<JobSpecInput> = {}): JobSpec =>
  JobSpec.parse({ image: 'kiln/busybox:1', maxPricePerHour: 1, timeoutSec: 15, command: ['sh', '-c', script], ...over })

/** The job's /out, unpacked: path -> text. */
async function outFiles(tar: Buffer): Promise<Record<string, string>> {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-out-'))
  try {
    await unpackTar(tar, dir)
    const names = (await readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile())
    const files: Record<string, string> = {}
    for (const e of names)
      files[relative(dir, join(e.parentPath, e.name))] = await readFile(join(e.parentPath, e.name), 'utf8')
    return files
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

beforeAll(async () => {
  execFileSync('bash', [join(ROOT, 'scripts/build-images.sh')], { stdio: 'pipe' })
  workDir = await mkdtemp(join(tmpdir(), 'kiln-runtime-inputs-'))
  // Writable by anyone on the host, so that only the read-only mount can stop the job's writes.
  inputs = await mkdtemp(join(tmpdir(), 'kiln-inputs-'))
  await writeFile(join(inputs, 'weights.bin'), 'W'.repeat(1000))
  await mkdir(join(inputs, 'data', 'sub'), { recursive: true })
  await writeFile(join(inputs, 'data', 'a.txt'), 'alpha\n')
  await writeFile(join(inputs, 'data', 'sub', 'b.txt'), 'beta\n')
  for (const f of ['weights.bin', 'data/a.txt', 'data/sub/b.txt']) await chmod(join(inputs, f), 0o666)
  for (const d of ['data', 'data/sub']) await chmod(join(inputs, d), 0o777)
  rt = createDockerRuntime({ docker, workDir, maxLogBytes: 64 * 1024, stopGraceSec: 1, owner })
})

afterEach(async () => {
  const left = await docker.listContainers({ all: true, filters: { label: [`kiln.owner=${owner}`] } })
  expect(left).toEqual([])
  expect((await readdir(workDir)).filter((n) => n.startsWith('kiln-job-'))).toEqual([])
})

afterAll(async () => {
  if (workDir) await rm(workDir, { recursive: true, force: true })
  if (inputs) await rm(inputs, { recursive: true, force: true })
})

describe('job inputs', () => {
  it('mounts a file and a folder read-only: the job, not root, reads them and cannot write them', async () => {
    const script = [
      'id -u > /out/uid',
      'wc -c < /in/weights > /out/weights-size',
      'cat /in/data/a.txt /in/data/sub/b.txt > /out/data',
      // Each write must fail, and for the mount's sake: the job records which did not, and why each failed.
      'echo x 2>>/out/why >> /in/weights && echo weights >> /out/written',
      'echo x 2>>/out/why > /in/data/new && echo new >> /out/written',
      'echo x 2>>/out/why > /in/data/sub/b.txt && echo b >> /out/written',
      'rm /in/data/a.txt 2>>/out/why && echo removed >> /out/written',
      'mkdir /in/data/d 2>>/out/why && echo mkdir >> /out/written',
      'touch /out/done',
    ].join('; ')
    const r = await rt.run({
      jobId: jobId(),
      spec: sh(script),
      mounts: [
        { hostPath: join(inputs, 'weights.bin'), containerPath: '/in/weights' },
        { hostPath: join(inputs, 'data'), containerPath: '/in/data' },
      ],
    })
    expect(r.error).toBeUndefined()
    expect(r.status).toBe('succeeded')
    const files = await outFiles(r.output!.tar)
    expect(files['uid']?.trim()).not.toBe('0')
    expect(files['weights-size']?.trim()).toBe('1000')
    expect(files['data']).toBe('alpha\nbeta\n')
    expect(files['done']).toBe('')
    expect(files['written']).toBeUndefined()
    const why = (files['why'] ?? '').trim().split('\n')
    expect(why).toHaveLength(5)
    for (const line of why) expect(line).toMatch(/Read-only file system/)
    // The host's files are as they were.
    expect((await readdir(join(inputs, 'data'))).sort()).toEqual(['a.txt', 'sub'])
  })

  it('refuses a mount outside /in/ before any container exists', async () => {
    const r = await rt.run({
      jobId: jobId(),
      spec: sh('true'),
      mounts: [{ hostPath: join(inputs, 'data'), containerPath: '/etc' }],
    })
    expect(r).toMatchObject({ status: 'failed', error: { kind: 'CONTAINER_FAILED' }, startedAt: null })
    expect(r.error?.message).toMatch(/not a plain path under \/in\//)
  })
})

describe('job secrets', () => {
  it('gives the job its secret as env and masks it in everything streamed, kept and hashed', async () => {
    const secret = `s3cr3t-${randomHex(6)}`
    let streamed = ''
    const logged: string[] = []
    const quiet = createDockerRuntime({
      docker,
      workDir,
      owner,
      logger: {
        debug: (f, m) => logged.push(JSON.stringify([f, m])),
        info: (f, m) => logged.push(JSON.stringify([f, m])),
        warn: (f, m) => logged.push(JSON.stringify([f, m])),
        error: (f, m) => logged.push(JSON.stringify([f, m])),
      },
    })
    const r = await quiet.run({
      jobId: jobId(),
      // Printed whole, split over two writes, and to stderr; its length proves the job got the value.
      spec: sh(
        'echo "token=$TOKEN"; printf "%s" "${TOKEN%????}"; sleep 0.2; echo "${TOKEN#${TOKEN%????}}"; echo "err $TOKEN" >&2; echo ${#TOKEN} > /out/len; echo "$PLAIN"',
        {
          env: { PLAIN: 'visible' },
          secrets: ['TOKEN'],
        },
      ),
      secretEnv: { TOKEN: secret },
      mask: [secret],
      onLog: (_s, text) => (streamed += text),
    })
    expect(r.status).toBe('succeeded')
    const files = await outFiles(r.output!.tar)
    expect(files['len']?.trim()).toBe(String(secret.length))
    for (const text of [streamed, r.log, ...logged]) expect(text).not.toContain(secret)
    expect(streamed).toContain('token=***\n')
    expect(streamed).toContain('err ***\n')
    expect(streamed).toContain('visible\n')
    expect(streamed.match(/\*\*\*/g)).toHaveLength(3)
    expect(r.log.length).toBe(streamed.length)
    expect(r.logDigest).toBe(sha256Hex(streamed))
    expect(r.logBytes).toBe(Buffer.byteLength(streamed))
  })
})

describe('GPU jobs', () => {
  it('refuses a GPU job with GPU_UNAVAILABLE on an engine without an nvidia runtime, naming what it has', async () => {
    const info = (await docker.info()) as { Runtimes?: Record<string, unknown> }
    // This machine has no GPU and no NVIDIA toolkit; were it there, this test would have to change.
    expect(Object.keys(info.Runtimes ?? {})).not.toContain('nvidia')
    const r = await rt.run({
      jobId: jobId(),
      spec: sh('true', { resources: { cpu: 1, memoryMb: 128, gpu: { count: 1 } } }),
      gpuDeviceIds: ['0'],
    })
    expect(r).toMatchObject({ status: 'failed', error: { kind: 'GPU_UNAVAILABLE' }, startedAt: null })
    expect(r.error?.message).toMatch(
      /asks for 1 GPU\(s\), but the Docker engine at \/var\/run\/docker\.sock has no nvidia runtime \(runtimes: .*runc/,
    )
  })
})
