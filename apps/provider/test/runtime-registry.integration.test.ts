import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import Dockerode from 'dockerode'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { JobSpec, randomHex } from '@kiln/protocol'
import { createDockerRuntime, type DockerRuntime } from '../src/runtime/index.ts'

// A real registry (Debian's docker-registry, htpasswd auth) on localhost, which the engine
// reaches over plain HTTP as it does any 127.0.0.0/8 registry, and a private image pushed to it.
const ROOT = resolve(import.meta.dirname, '../../..')
const docker = new Dockerode({ socketPath: '/var/run/docker.sock' })
const user = 'alice'
const password = `right-${randomHex(6)}`
let dir: string
let registry: ChildProcess
let server: string
let ref: string
let rt: DockerRuntime

async function freePort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((ok) => s.listen(0, '127.0.0.1', ok))
  const port = (s.address() as { port: number }).port
  await new Promise((ok) => s.close(ok))
  return port
}

async function waitForRegistry(url: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const status = await fetch(url).then(
      (r) => r.status,
      () => 0,
    )
    if (status === 401) return // up, and asking for credentials
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`the registry at ${url} did not come up`)
}

async function follow(stream: NodeJS.ReadableStream): Promise<Array<{ error?: string }>> {
  return new Promise((ok, fail) =>
    docker.modem.followProgress(stream, (err: Error | null, out: Array<{ error?: string }>) =>
      err ? fail(err) : ok(out),
    ),
  )
}

beforeAll(async () => {
  execFileSync('bash', [join(ROOT, 'scripts/build-images.sh')], { stdio: 'pipe' })
  dir = await mkdtemp(join(tmpdir(), 'kiln-registry-'))
  const port = await freePort()
  server = `localhost:${port}`
  await writeFile(join(dir, 'htpasswd'), execFileSync('htpasswd', ['-Bbn', user, password]))
  await writeFile(
    join(dir, 'config.yml'),
    [
      'version: 0.1',
      'log: { level: error }',
      `storage: { filesystem: { rootdirectory: ${join(dir, 'data')} } }`,
      `http: { addr: "127.0.0.1:${port}" }`,
      `auth: { htpasswd: { realm: kiln-test, path: ${join(dir, 'htpasswd')} } }`,
      '',
    ].join('\n'),
  )
  registry = spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: 'ignore' })
  await waitForRegistry(`http://127.0.0.1:${port}/v2/`)

  // An image whose top layer exists nowhere else, so the pull must download it.
  const build = join(dir, 'build')
  execFileSync('mkdir', ['-p', build])
  await writeFile(join(build, 'blob'), randomBytes(300 * 1024))
  await writeFile(join(build, 'Dockerfile'), 'FROM kiln/busybox:1\nCOPY blob /blob\n')
  ref = `${server}/team/private-${randomHex(4)}:1`
  execFileSync('docker', ['build', '-q', '-t', ref, build], {
    stdio: 'pipe',
    env: { ...process.env, DOCKER_BUILDKIT: '0' },
  })
  const pushed = await follow(
    await docker.getImage(ref).push({ authconfig: { username: user, password, serveraddress: server } }),
  )
  expect(pushed.filter((e) => e.error)).toEqual([])
  await docker.getImage(ref).remove()
  rt = createDockerRuntime({ docker, workDir: dir, owner: `runtime-registry-test-${randomHex(4)}` })
}, 60_000)

afterAll(async () => {
  await docker
    .getImage(ref)
    .remove({ force: true })
    .catch(() => {})
  registry?.kill()
  if (dir) await rm(dir, { recursive: true, force: true })
})

describe('private images', () => {
  it('refuses wrong credentials and none with REGISTRY_AUTH_FAILED, naming the registry and not the password', async () => {
    const wrong = `wrong-${randomHex(6)}`
    const e = await rt.ensureImage(ref, { auth: { server, username: user, password: wrong } }).catch((x: unknown) => x)
    expect(e).toMatchObject({ kind: 'REGISTRY_AUTH_FAILED', code: 'KILN_5010' })
    const message = (e as Error).message
    expect(message).toMatch(new RegExp(`^the registry ${server} refused the credentials of alice for image ${ref}: `))
    expect(message).not.toContain(wrong)
    expect(message).not.toContain(password)
    await expect(rt.ensureImage(ref)).rejects.toMatchObject({
      kind: 'REGISTRY_AUTH_FAILED',
      message: expect.stringMatching(/wants credentials, and the job gave none/),
    })
    expect(await rt.hasImage(ref)).toBe(false)
  })

  it('pulls with the right credentials, reporting progress, and runs the job from it', async () => {
    const progress: Array<[number, number | null]> = []
    const r = await rt.run({
      jobId: `job_${randomHex(8)}`,
      spec: JobSpec.parse({
        image: ref,
        privateImage: true,
        maxPricePerHour: 1,
        timeoutSec: 15,
        command: ['sh', '-c', 'wc -c < /blob'],
      }),
      pull: { auth: { server, username: user, password }, onProgress: (d, t) => progress.push([d, t]) },
    })
    expect(r.error).toBeUndefined()
    expect(r.log.trim()).toBe(String(300 * 1024))
    const last = progress.at(-1)
    expect(last?.[1]).toBeGreaterThan(0)
    expect(last?.[0]).toBe(last?.[1])
    expect(progress.some(([d, t]) => t !== null && d < t)).toBe(true)
  })
})
