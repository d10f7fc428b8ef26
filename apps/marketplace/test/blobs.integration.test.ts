import { randomBytes } from 'node:crypto'
import { mkdtempSync, readdirSync } from 'node:fs'
import { request as httpRequest, type Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openDb, type DbHandle } from '@kiln/db'
import { createMeshNode, type MeshNode } from '@kiln/mesh'
import {
  authorizationHeader,
  BlobFrame,
  Identity,
  Kind,
  OUTPUT_CHUNK_BYTES,
  Protocol,
  seal,
  sealReadToken,
  sha256Hex,
  type Address,
  type BlobRequest,
} from '@kiln/protocol'
import { uploadInput } from '@kiln/sdk'
import { createFileArtifactStore } from '@kiln/artifacts'
import type { NetworkInfo } from '@kiln/api'
import { createHttpServer } from '../src/server.ts'
import { createBlobStore, type BlobStore } from '../src/blobs/store.ts'
import { serveBlobs } from '../src/blobs/serve.ts'
import type { ApiContext } from '../src/api/market.ts'

// The marketplace's own HTTP server (createHttpServer) with a real blob store on a temp folder
// and an embedded Postgres; requests over real sockets.

const arbiter = Identity.generate()
const alice = Identity.generate()
const bob = Identity.generate()
const silent = { info: () => {}, warn: () => {}, error: () => {} }
let handle: DbHandle
let store: BlobStore
let server: Server
let base: string
let dir: string

beforeAll(async () => {
  handle = await openDb()
  dir = mkdtempSync(join(tmpdir(), 'kiln-blobs-'))
  store = createBlobStore({
    dir: join(dir, 'blobs'),
    db: handle.db,
    maxBlobBytes: 8 * 1024 ** 2,
    maxClientBytes: 12 * 1024 ** 2,
  })
  // The API part answers network.info only: that is what the upload asks of it.
  const api = {
    coordinator: { log: silent },
    info: { arbiter: arbiter.address } as unknown as NetworkInfo,
  } as unknown as ApiContext
  server = createHttpServer({ api, artifacts: createFileArtifactStore(join(dir, 'artifacts')), blobs: store })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`
})
afterAll(async () => {
  server?.close()
  await handle?.close()
})

const readHeader = (who: Identity) => authorizationHeader(sealReadToken(who, arbiter.address))
const writeHeader = (who: Identity, sha256: string, audience: Address = arbiter.address) =>
  authorizationHeader(seal(who, Kind.read, { audience, scope: 'blob:write', sha256 }, { ttlMs: 60_000 }))

async function head(who: Identity, sha256: string) {
  const res = await fetch(`${base}/blobs/${sha256}`, { method: 'HEAD', headers: { authorization: readHeader(who) } })
  return { status: res.status, offset: res.headers.get('upload-offset'), length: res.headers.get('content-length') }
}

async function put(who: Identity, sha256: string, offset: number, size: number, body: Uint8Array) {
  const res = await fetch(`${base}/blobs/${sha256}?offset=${offset}&size=${size}`, {
    method: 'PUT',
    headers: { authorization: writeHeader(who, sha256) },
    body: body as Uint8Array<ArrayBuffer>,
  })
  return {
    status: res.status,
    offset: res.headers.get('upload-offset'),
    body: (await res.json()) as Record<string, unknown>,
  }
}

/** A PUT whose connection is cut after `sent` bytes of a declared `length`. */
async function cutPut(who: Identity, sha256: string, size: number, bytes: Buffer, sent: number): Promise<void> {
  const req = httpRequest(`${base}/blobs/${sha256}?offset=0&size=${size}`, {
    method: 'PUT',
    headers: { authorization: writeHeader(who, sha256), 'content-length': bytes.length },
  })
  req.on('error', () => {})
  await new Promise<void>((r) => req.write(bytes.subarray(0, sent), () => r()))
  await new Promise((r) => setTimeout(r, 200))
  req.destroy()
  await new Promise((r) => setTimeout(r, 200))
}

describe('blob store over HTTP', () => {
  it('takes an upload in chunks, and HEAD then answers 200 with its length', async () => {
    const bytes = randomBytes(300_000)
    const sha = sha256Hex(bytes)
    expect(await head(alice, sha)).toMatchObject({ status: 404, offset: '0' })
    const first = await put(alice, sha, 0, bytes.length, bytes.subarray(0, 100_000))
    expect(first).toMatchObject({ status: 200, offset: '100000', body: { complete: false, offset: 100_000 } })
    expect(await head(alice, sha)).toMatchObject({ status: 404, offset: '100000' })
    const last = await put(alice, sha, 100_000, bytes.length, bytes.subarray(100_000))
    expect(last).toMatchObject({ status: 201, body: { complete: true, size: bytes.length } })
    expect(await head(alice, sha)).toMatchObject({ status: 200, length: String(bytes.length) })
    expect(await store.owns(alice.address, sha)).toBe(true)
  })

  it('keeps what arrived before a cut-off, answers a wrong offset 409 with the right one, and resumes', async () => {
    const bytes = randomBytes(400_000)
    const sha = sha256Hex(bytes)
    await cutPut(alice, sha, bytes.length, bytes, 150_000)
    const kept = Number((await head(alice, sha)).offset)
    expect(kept).toBeGreaterThan(0)
    expect(kept).toBeLessThanOrEqual(150_000)
    const wrong = await put(alice, sha, 0, bytes.length, bytes.subarray(0, 10))
    expect(wrong).toMatchObject({
      status: 409,
      offset: String(kept),
      body: { kind: 'PAYLOAD_INVALID', code: 'KILN_2001' },
    })
    expect(wrong.body.message).toMatch(new RegExp(`continues at offset ${kept}`))
    expect((await put(alice, sha, kept, bytes.length, bytes.subarray(kept))).status).toBe(201)
    const back: Buffer[] = []
    for await (const c of store.open(sha) as AsyncIterable<Buffer>) back.push(c)
    expect(Buffer.concat(back)).toEqual(bytes)
  })

  it('refuses bytes that do not hash to the digest and deletes the partial upload', async () => {
    const bytes = randomBytes(50_000)
    const claimed = sha256Hex(Buffer.from('something else'))
    const r = await put(alice, claimed, 0, bytes.length, bytes)
    expect(r).toMatchObject({ status: 422, body: { kind: 'INPUT_DIGEST_MISMATCH', code: 'KILN_6005' } })
    expect(r.body.message).toMatch(/upload was deleted/)
    expect(await head(alice, claimed)).toMatchObject({ status: 404, offset: '0' })
    expect(readdirSync(join(dir, 'blobs', 'partial', alice.address))).not.toContain(claimed)
  })

  it('refuses a blob over the per-blob limit and uploads over the per-client total', async () => {
    const sha = sha256Hex(Buffer.from('big'))
    const big = await put(bob, sha, 0, 9 * 1024 ** 2, Buffer.alloc(10))
    expect(big).toMatchObject({ status: 413, body: { kind: 'INPUT_TOO_LARGE', context: { limit: 'blob' } } })
    // Bob promises 7 MiB (a partial upload counts at its declared size), then asks for 6 more: over 12.
    const a = randomBytes(1000)
    expect((await put(bob, sha256Hex(randomBytes(8)), 0, 7 * 1024 ** 2, a)).status).toBe(200)
    const over = await put(bob, sha256Hex(randomBytes(8)), 0, 6 * 1024 ** 2, a)
    expect(over).toMatchObject({ status: 413, body: { kind: 'INPUT_TOO_LARGE', context: { limit: 'client' } } })
    expect(over.body.message).toMatch(/per client/)
  })

  it("tells a stranger nothing about another client's blob: HEAD 404, and it must upload every byte itself", async () => {
    const bytes = randomBytes(200_000)
    const sha = sha256Hex(bytes)
    expect((await put(alice, sha, 0, bytes.length, bytes)).status).toBe(201)
    expect(await head(bob, sha)).toMatchObject({ status: 404, offset: '0' })
    expect(await store.owns(bob.address, sha)).toBe(false)
    // A write token is bound to its digest and to this marketplace.
    const res = await fetch(`${base}/blobs/${sha}?offset=0&size=${bytes.length}`, {
      method: 'PUT',
      headers: { authorization: writeHeader(bob, sha256Hex(Buffer.from('x'))) },
      body: bytes,
    })
    expect(res.status).toBe(403)
    // A read token does not write.
    const ro = await fetch(`${base}/blobs/${sha}?offset=0&size=${bytes.length}`, {
      method: 'PUT',
      headers: { authorization: readHeader(bob) },
      body: bytes,
    })
    expect(ro.status).toBe(401)
    expect((await put(bob, sha, 0, bytes.length, bytes.subarray(0, 1000))).body).toMatchObject({ offset: 1000 })
    expect((await put(bob, sha, 1000, bytes.length, bytes.subarray(1000))).status).toBe(201)
    expect(await head(bob, sha)).toMatchObject({ status: 200 })
    // Stored once.
    expect(readdirSync(join(dir, 'blobs', 'data')).filter((n) => n === sha)).toHaveLength(1)
  })

  it('HEAD without a token is refused 401', async () => {
    const res = await fetch(`${base}/blobs/${'a'.repeat(64)}`, { method: 'HEAD' })
    expect(res.status).toBe(401)
  })
})

describe('uploadInput (SDK)', () => {
  it('uploads a file in chunks, reports progress, and skips it the second time', async () => {
    const file = join(dir, 'weights.bin')
    const bytes = randomBytes(3 * 1024 ** 2 + 17)
    await import('node:fs/promises').then((fs) => fs.writeFile(file, bytes))
    const seen: number[] = []
    const up = await uploadInput({ url: base, identity: alice }, file, {
      chunkBytes: 1024 ** 2,
      onProgress: (done) => seen.push(done),
    })
    expect(up).toEqual({ sha256: sha256Hex(bytes), size: bytes.length, kind: 'file' })
    expect(seen.at(-1)).toBe(bytes.length)
    expect(await head(alice, up.sha256)).toMatchObject({ status: 200, length: String(bytes.length) })
    const again: number[] = []
    await uploadInput({ url: base, identity: alice, arbiter: arbiter.address }, file, {
      onProgress: (done) => again.push(done),
    })
    expect(again).toEqual([bytes.length])
  })

  it('resumes a cut-off upload from the offset the store keeps', async () => {
    const file = join(dir, 'resume.bin')
    const bytes = randomBytes(2 * 1024 ** 2)
    await import('node:fs/promises').then((fs) => fs.writeFile(file, bytes))
    await cutPut(bob, sha256Hex(bytes), bytes.length, bytes, 700_000)
    const kept = Number((await head(bob, sha256Hex(bytes))).offset)
    expect(kept).toBeGreaterThan(0)
    const seen: number[] = []
    await uploadInput({ url: base, identity: bob }, file, { onProgress: (d) => seen.push(d) })
    expect(seen[0]).toBe(kept)
    expect(await head(bob, sha256Hex(bytes))).toMatchObject({ status: 200 })
  })
})

describe('serveBlobs over libp2p', () => {
  let market: MeshNode
  let provider: MeshNode
  const providerId = Identity.generate()
  const asked: BlobRequest[] = []
  const bytes = randomBytes(2 * OUTPUT_CHUNK_BYTES + 99)
  const sha = sha256Hex(bytes)
  beforeAll(async () => {
    market = createMeshNode({ identity: Identity.generate() })
    provider = createMeshNode({ identity: providerId })
    await market.start()
    await provider.start()
    expect((await put(alice, sha, 0, bytes.length, bytes)).status).toBe(201)
    await serveBlobs({
      mesh: market,
      store,
      log: silent,
      authorize: async (p, req) => {
        asked.push(req)
        return p === providerId.address && req.jobId === 'job_0123456789abc'
      },
    })
  })
  afterAll(async () => {
    await Promise.allSettled([market?.stop(), provider?.stop()])
  })

  const fetchBlob = async (jobId: string, offset: number) => {
    const ch = await provider.open(market.address, Protocol.blob, { addrs: market.multiaddrs() })
    await ch.sendJson({ envelope: seal(providerId, Kind.blobRequest, { jobId, escrowId: 'e1', sha256: sha, offset }) })
    const frame = BlobFrame.parse(await ch.nextJson(10_000))
    const chunks: Uint8Array[] = []
    if (frame.t === 'blob') for (let i = 0; i < frame.chunks; i++) chunks.push((await ch.next(10_000))!)
    await ch.close()
    return { frame, data: Buffer.concat(chunks) }
  }

  it('streams an authorised blob from the offset, in chunks of OUTPUT_CHUNK_BYTES', async () => {
    const { frame, data } = await fetchBlob('job_0123456789abc', 50)
    expect(frame).toEqual({ t: 'blob', size: bytes.length, bytes: bytes.length - 50, chunks: 3 })
    expect(data).toEqual(bytes.subarray(50))
    expect(asked.at(-1)).toMatchObject({ jobId: 'job_0123456789abc', escrowId: 'e1', sha256: sha, offset: 50 })
  })

  it('answers a lease that does not name the blob with an error frame', async () => {
    const { frame } = await fetchBlob('job_otherjob0000', 0)
    expect(frame).toMatchObject({ t: 'error', error: { kind: 'INPUT_UNAVAILABLE', code: 'KILN_6006' } })
  })
})
