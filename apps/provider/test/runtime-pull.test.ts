import { createServer, type IncomingMessage, type Server } from 'node:http'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Dockerode from 'dockerode'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createDockerRuntime, registryOf } from '../src/runtime/index.ts'

// A stand-in engine on a unix socket: the real dockerode and docker-modem talk to it, so the
// request they send (the X-Registry-Auth header) and the way errors come back are the real ones.
let dir: string
let server: Server
let answer: (req: IncomingMessage, auth: Record<string, string> | undefined) => { status: number; body: string }
const seen: Array<{ url: string; auth: Record<string, string> | undefined }> = []

const pw = 'pa55-word-xyz'
const auth = { server: 'registry.example:5000', username: 'alice', password: pw }
const ref = 'registry.example:5000/team/app:1'
// As the engine writes them: one JSON object a line, each line ended.
const lines = (events: object[]) => events.map((e) => `${JSON.stringify(e)}\r\n`).join('')

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiln-pull-test-'))
  server = createServer((req, res) => {
    const header = req.headers['x-registry-auth']
    const decoded =
      typeof header === 'string'
        ? (JSON.parse(Buffer.from(header.replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString()) as Record<
            string,
            string
          >)
        : undefined
    if (req.url?.startsWith('/images/create')) seen.push({ url: req.url, auth: decoded })
    // hasImage: never present, so every ensureImage pulls.
    const { status, body } = req.url?.includes('/json')
      ? { status: 404, body: JSON.stringify({ message: 'No such image' }) }
      : answer(req, decoded)
    res.writeHead(status, { 'content-type': 'application/json' })
    res.end(body)
  })
  await new Promise<void>((ok) => server.listen(join(dir, 'engine.sock'), ok))
})

afterAll(async () => {
  await new Promise((ok) => server.close(ok))
  await rm(dir, { recursive: true, force: true })
})

const runtime = () => {
  const logged: unknown[] = []
  const log = (fields: unknown, msg: string) => logged.push([fields, msg])
  const docker = new Dockerode({ socketPath: join(dir, 'engine.sock') })
  const rt = createDockerRuntime({
    docker,
    workDir: dir,
    logger: { debug: log, info: log, warn: log, error: log },
  })
  return { rt, docker, logged }
}

describe('registryOf', () => {
  it('names the registry of an image reference', () => {
    expect(registryOf('busybox')).toBe('docker.io')
    expect(registryOf('library/busybox:1')).toBe('docker.io')
    expect(registryOf('index.docker.io/library/busybox')).toBe('docker.io')
    expect(registryOf('ghcr.io/acme/x:2')).toBe('ghcr.io')
    expect(registryOf('localhost:5000/x')).toBe('localhost:5000')
    expect(registryOf('localhost/x')).toBe('localhost')
  })
})

describe('ensureImage with registry credentials', () => {
  it('sends them in the pull request only, keeps nothing, and reports progress summed over layers', async () => {
    answer = () => ({
      status: 200,
      body: lines([
        { status: 'Pulling from team/app', id: '1' },
        { status: 'Pulling fs layer', id: 'aaa' },
        { status: 'Pulling fs layer', id: 'bbb' },
        { status: 'Downloading', id: 'aaa', progressDetail: { current: 100, total: 1000 } },
        { status: 'Downloading', id: 'bbb', progressDetail: { current: 50, total: 500 } },
        { status: 'Download complete', id: 'aaa' },
        { status: 'Pull complete', id: 'bbb' },
        { status: 'Digest: sha256:00' },
        { status: 'Status: Downloaded newer image for ' + ref },
      ]),
    })
    const { rt, docker, logged } = runtime()
    const progress: Array<[number, number | null]> = []
    seen.length = 0
    // The stand-in never has the image afterwards either: the pull itself went through.
    await expect(rt.ensureImage(ref, { auth, onProgress: (d, t) => progress.push([d, t]) })).rejects.toMatchObject({
      kind: 'IMAGE_NOT_FOUND',
      message: expect.stringMatching(/the pull finished but the image is still not present/),
    })
    expect(seen).toHaveLength(1)
    expect(seen[0]?.url).toContain('fromImage=registry.example%3A5000%2Fteam%2Fapp')
    expect(seen[0]?.url).not.toContain(pw)
    expect(seen[0]?.auth).toEqual({ username: 'alice', password: pw, serveraddress: 'registry.example:5000' })
    expect(progress).toEqual([
      [0, null],
      [100, 1000],
      [150, 1500],
      [1050, 1500],
      [1500, 1500],
    ])
    // Nothing of the credentials stays on the client or reaches the logger.
    expect(JSON.stringify(docker.modem, (_k, v: unknown) => (typeof v === 'function' ? undefined : v))).not.toContain(
      pw,
    )
    expect(JSON.stringify(logged)).not.toContain(pw)

    // A second pull without credentials sends none.
    seen.length = 0
    await rt.ensureImage(ref).catch(() => {})
    expect(seen[0]?.auth).toBeUndefined()
  })

  it('maps a refusal to REGISTRY_AUTH_FAILED naming the registry, never the password', async () => {
    const { rt } = runtime()
    const refusals = [
      // As the engine answers at once (HTTP 500 with the registry's words) ...
      () => ({
        status: 500,
        body: JSON.stringify({
          message: `Head "https://registry.example:5000/v2/team/app/manifests/1": unauthorized: authentication required (${pw})`,
        }),
      }),
      // ... or inside the progress stream.
      () => ({ status: 200, body: lines([{ error: 'denied: requested access to the resource is denied' }]) }),
    ]
    for (const refusal of refusals) {
      answer = refusal
      const e = await rt.ensureImage(ref, { auth }).catch((err: unknown) => err)
      expect(e).toMatchObject({
        kind: 'REGISTRY_AUTH_FAILED',
        code: 'KILN_5010',
        message: expect.stringMatching(
          /^the registry registry\.example:5000 refused the credentials of alice for image/,
        ),
      })
      expect(String((e as Error).message)).not.toContain(pw)
      expect(JSON.stringify(e)).not.toContain(pw)
    }
    answer = refusals[0]!
    await expect(rt.ensureImage(ref)).rejects.toMatchObject({
      kind: 'REGISTRY_AUTH_FAILED',
      message: expect.stringMatching(/wants credentials, and the job gave none/),
    })
  })

  it('keeps a missing image IMAGE_NOT_FOUND, and other failures too, with the password masked', async () => {
    const { rt } = runtime()
    answer = () => ({
      status: 404,
      body: JSON.stringify({
        message: "pull access denied for team/app, repository does not exist or may require 'docker login'",
      }),
    })
    await expect(rt.ensureImage('team/app:1')).rejects.toMatchObject({ kind: 'IMAGE_NOT_FOUND' })
    answer = () => ({ status: 500, body: JSON.stringify({ message: `disk full while writing ${pw}` }) })
    const e = (await rt.ensureImage(ref, { auth }).catch((err: unknown) => err)) as Error
    expect(e).toMatchObject({
      kind: 'IMAGE_NOT_FOUND',
      message: expect.stringContaining('disk full while writing ***'),
    })
  })

  it('does not send credentials for one registry to another', async () => {
    const { rt } = runtime()
    seen.length = 0
    await expect(rt.ensureImage('ghcr.io/team/app:1', { auth })).rejects.toMatchObject({
      kind: 'REGISTRY_AUTH_FAILED',
      message:
        'the registry credentials are for registry.example:5000, but image ghcr.io/team/app:1 is on ghcr.io: they were not sent',
    })
    expect(seen).toEqual([])
  })
})
