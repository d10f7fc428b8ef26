import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createMeshNode, type Channel, type MeshNode } from '@kiln/mesh'
import {
  BlobRequest,
  Identity,
  isKilnError,
  Kind,
  NonceCache,
  open,
  OUTPUT_CHUNK_BYTES,
  Protocol,
  sha256Hex,
  type JobInput,
} from '@kiln/protocol'
import { meshBlobSource } from '../src/inputs/blob-client.ts'
import { InputCache, removeTree } from '../src/inputs/cache.ts'
import { prepareInputs } from '../src/inputs/prepare.ts'

// Two real libp2p nodes over TCP on loopback: a stand-in marketplace serving Protocol.blob the
// way the protocol describes (sealed request, `blob` frame, raw chunks), and the provider's client.

const BLOB = randomBytes(3 * OUTPUT_CHUNK_BYTES + 1234)
const SHA = sha256Hex(BLOB)
const jobId = 'job_0123456789abc'
const escrowId = 'escrow-1'
const providerId = Identity.generate()
const nodes: MeshNode[] = []
let market: MeshNode
let provider: MeshNode
let dir: string
const requests: BlobRequest[] = []
/** When set, the next answer sends only this many chunks and then resets the stream. */
let cutAfterChunks: number | undefined

async function serveBlob(ch: Channel): Promise<void> {
  const raw = (await ch.nextJson<{ envelope?: unknown }>(5_000))?.envelope
  const { payload } = open(raw, {
    kind: Kind.blobRequest,
    schema: BlobRequest,
    signer: providerId.address,
    nonces: new NonceCache(),
  })
  requests.push(payload)
  if (payload.sha256 !== SHA || payload.jobId !== jobId || payload.escrowId !== escrowId)
    return ch.sendJson({
      t: 'error',
      error: {
        code: 'KILN_6006',
        kind: 'INPUT_UNAVAILABLE',
        message: `lease ${payload.jobId} names no blob ${payload.sha256}`,
      },
    })
  const rest = BLOB.subarray(payload.offset)
  const chunks = Math.ceil(rest.length / OUTPUT_CHUNK_BYTES)
  await ch.sendJson({ t: 'blob', size: BLOB.length, bytes: rest.length, chunks })
  const cut = cutAfterChunks
  cutAfterChunks = undefined
  for (let i = 0; i < chunks; i++) {
    if (cut !== undefined && i === cut) return ch.abort(new Error('marketplace went away'))
    await ch.send(rest.subarray(i * OUTPUT_CHUNK_BYTES, (i + 1) * OUTPUT_CHUNK_BYTES))
  }
}

beforeAll(async () => {
  market = createMeshNode({ identity: Identity.generate() })
  provider = createMeshNode({ identity: providerId })
  nodes.push(market, provider)
  await market.start()
  await provider.start()
  await market.handle(Protocol.blob, serveBlob)
  dir = await mkdtemp(join(tmpdir(), 'kiln-inputs-blob-'))
})
afterAll(async () => {
  await Promise.allSettled(nodes.map((n) => n.stop()))
  await removeTree(dir)
})

const source = (over: { jobId?: string } = {}) =>
  meshBlobSource({
    mesh: provider,
    identity: providerId,
    marketplace: market.address,
    addrs: market.multiaddrs(),
    jobId: over.jobId ?? jobId,
    escrowId,
  })

const upload: JobInput = { name: 'weights', source: 'upload', sha256: SHA, size: BLOB.length, kind: 'file' }

describe('meshBlobSource over libp2p', () => {
  it('fetches an upload through the marketplace, resuming from the offset after a reset', async () => {
    const cache = await InputCache.open({ dir: join(dir, 'a'), maxBytes: 100 * 1024 * 1024 })
    requests.length = 0
    cutAfterChunks = 2
    const p = await prepareInputs([upload], { cache, blobs: source() })
    expect(await readFile(p.mounts[0]!.hostPath)).toEqual(BLOB)
    expect(requests.map((r) => r.offset)).toEqual([0, 2 * OUTPUT_CHUNK_BYTES])
    expect(requests[0]).toMatchObject({ jobId, escrowId, sha256: SHA })
    p.release()
  })

  it("a refusal comes back as the marketplace's error kind, and nothing is cached", async () => {
    const cache = await InputCache.open({ dir: join(dir, 'b'), maxBytes: 100 * 1024 * 1024 })
    const e = await prepareInputs([upload], { cache, blobs: source({ jobId: 'job_otherjob000' }) }).catch((x) => x)
    expect(isKilnError(e, 'INPUT_UNAVAILABLE')).toBe(true)
    expect((e as Error).message).toMatch(/names no blob/)
    expect(cache.list()).toEqual([])
  })
})
