import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import type { Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createFileArtifactStore, packCanonicalTar } from '@kiln/artifacts'
import { openDb, type DbHandle } from '@kiln/db'
import { Identity, loadOrCreateIdentity, sha256Hex, TEST_TOKEN, type JobSpecInput } from '@kiln/protocol'
import { packFolder } from '@kiln/sdk'
import type { NetworkInfo } from '@kiln/api'
import { createHttpServer } from '../../marketplace/src/server.ts'
import { createBlobStore, type BlobStore } from '../../marketplace/src/blobs/store.ts'
import type { ApiContext } from '../../marketplace/src/api/market.ts'
import { uploadSpecInputs } from '../src/inputs.ts'
import { run } from '../src/main.ts'

// The marketplace's HTTP server with its real blob store (on a temp folder, an embedded
// Postgres); its API part answers network.info, which is what a quote and an upload ask.

const arbiter = Identity.generate()
const silent = { info: () => {}, warn: () => {}, error: () => {} }
let handle: DbHandle
let store: BlobStore
let server: Server
let api: string
let dir: string

beforeAll(async () => {
  handle = await openDb()
  dir = mkdtempSync(join(tmpdir(), 'kiln-cli-inputs-'))
  store = createBlobStore({ dir: join(dir, 'blobs'), db: handle.db })
  const info: NetworkInfo = {
    arbiter: arbiter.address,
    mint: arbiter.address,
    rpcUrl: 'http://127.0.0.1:9',
    meshAddrs: [],
    version: 'test',
    token: TEST_TOKEN,
    verification: { p: 0, bondRatio: 10 },
    feeBps: 100,
    minReputation: 0.15,
  }
  const ctx = { coordinator: { log: silent }, info } as unknown as ApiContext
  server = createHttpServer({ api: ctx, artifacts: createFileArtifactStore(join(dir, 'artifacts')), blobs: store })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  api = `http://127.0.0.1:${(server.address() as { port: number }).port}`
})
afterAll(async () => {
  server?.close()
  await handle?.close()
})

function fixture(name: string) {
  const root = join(dir, name)
  mkdirSync(join(root, 'data', 'weights', 'sub'), { recursive: true })
  writeFileSync(join(root, 'data', 'prompt.txt'), 'hello kiln\n')
  writeFileSync(join(root, 'data', 'weights', 'a.bin'), Buffer.alloc(70_000, 7))
  writeFileSync(join(root, 'data', 'weights', 'sub', 'b.txt'), 'b')
  const spec = {
    image: 'kiln/matmul:1',
    maxPricePerHour: 1_000_000,
    inputs: [
      { name: 'prompt', path: './data/prompt.txt' },
      { name: 'weights', path: 'data/weights', mount: '/in/w' },
      { name: 'remote', source: 'https://example.com/x', sha256: 'a'.repeat(64), size: 3 },
    ],
  }
  writeFileSync(join(root, 'job.yaml'), JSON.stringify(spec))
  return { root, spec }
}

describe('local inputs in a spec', () => {
  it('packs a folder exactly as packCanonicalTar does, streaming to a file', async () => {
    const { root } = fixture('pack')
    await packFolder(join(root, 'data'), join(root, 'out.tar'))
    const canonical = await packCanonicalTar(join(root, 'data'))
    expect(sha256Hex(readFileSync(join(root, 'out.tar')))).toBe(canonical.digest)
  })

  it('uploads path: inputs (relative to the spec file) and rewrites them to uploads', async () => {
    const { root, spec } = fixture('rewrite')
    const identity = Identity.generate()
    const err: string[] = []
    const out = await uploadSpecInputs(
      spec as JobSpecInput,
      join(root, 'job.yaml'),
      { api, identity, json: true },
      {
        out: () => {},
        err: (l) => err.push(l),
      },
    )
    const tar = await packCanonicalTar(join(root, 'data', 'weights'))
    const prompt = readFileSync(join(root, 'data', 'prompt.txt'))
    expect(out.inputs).toEqual([
      { name: 'prompt', source: 'upload', sha256: sha256Hex(prompt), size: prompt.length, kind: 'file' },
      { name: 'weights', mount: '/in/w', source: 'upload', sha256: tar.digest, size: tar.bytes, kind: 'dir' },
      spec.inputs[2],
    ])
    expect(await store.owns(identity.address, sha256Hex(prompt))).toBe(true)
    expect(await store.owns(identity.address, tar.digest)).toBe(true)
    const progress = err.map((l) => JSON.parse(l) as { input: string; done: number; total: number })
    expect(progress.filter((p) => p.input === 'weights').at(-1)).toEqual({
      progress: 'upload',
      input: 'weights',
      done: tar.bytes,
      total: tar.bytes,
    })
  })

  it('kiln submit uploads them before it submits; a bad path: input is named before anything is sent', async () => {
    const { root } = fixture('cli')
    const keypair = join(root, 'id.json')
    const me = loadOrCreateIdentity(keypair)
    const err: string[] = []
    const out: string[] = []
    const io = { out: (l: string) => out.push(l), err: (l: string) => err.push(l) }
    // This server has no coordinator behind jobs.submit: the upload must have happened before it fails.
    await run(['--json', '--api', api, '--keypair', keypair, 'submit', '--no-wait', join(root, 'job.yaml')], io)
    const prompt = readFileSync(join(root, 'data', 'prompt.txt'))
    expect(await store.owns(me.address, sha256Hex(prompt))).toBe(true)
    expect(err.some((l) => l.includes('"progress":"upload"'))).toBe(true)

    writeFileSync(
      join(root, 'bad.yaml'),
      JSON.stringify({ image: 'kiln/matmul:1', maxPricePerHour: 1, inputs: [{ name: 'x', path: 'a', size: 3 }] }),
    )
    out.length = 0
    const code = await run(
      ['--json', '--api', 'http://127.0.0.1:9', '--keypair', keypair, 'submit', join(root, 'bad.yaml')],
      io,
    )
    expect(code).toBe(2)
    expect(JSON.parse(out.at(-1)!)).toMatchObject({ ok: false, error: { kind: 'PAYLOAD_INVALID' } })
    expect(out.at(-1)).toMatch(/inputs\.0\.size/)
  })
})
