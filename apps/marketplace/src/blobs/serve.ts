import type { Channel, MeshNode } from '@kiln/mesh'
import {
  BlobRequest,
  isKilnError,
  Kind,
  KilnError,
  NonceCache,
  open,
  OUTPUT_CHUNK_BYTES,
  Protocol,
  type Address,
  type BlobFrame,
} from '@kiln/protocol'
import type { BlobStore } from './store.ts'

/** A provider's request lives this long at most (it seals one per fetch, for 60 s). */
export const MAX_BLOB_REQUEST_TTL_MS = 2 * 60_000

export interface ServeBlobsInit {
  mesh: Pick<MeshNode, 'handle'>
  store: Pick<BlobStore, 'size' | 'open'>
  /**
   * Whether `provider` may read `req.sha256` for the lease `req.escrowId` of `req.jobId`. The
   * coordinator answers it (inputs/authorize.ts mayFetchInput): a run placed on this provider
   * under this escrow, locked or running, whose spec names the digest as an input.
   */
  authorize(provider: Address, req: BlobRequest): Promise<boolean>
  log: { info(o: object, msg: string): void; warn(o: object, msg: string): void }
  /** Replay protection for the requests; default a cache of this process. */
  nonces?: NonceCache
  /** How long to wait for the request. Default 15 s. */
  requestTimeoutMs?: number
}

/**
 * Serves Protocol.blob: a provider sends a `kiln/blob-request/1` envelope it signed (the channel's
 * Noise-authenticated peer must be the signer), and gets a `blob` frame then the raw bytes from
 * its offset in OUTPUT_CHUNK_BYTES chunks, or one `error` frame. A digest the provider may not
 * read and one the store lacks get the same answer, so asking says nothing about other blobs.
 *
 * Called once at start-up beside the other mesh handlers, e.g. in the coordinator's start():
 *   await serveBlobs({ mesh, store: blobs, log, authorize: (p, r) => mayFetchInput(grantDeps, p, r) })
 */
export async function serveBlobs(init: ServeBlobsInit): Promise<void> {
  const nonces = init.nonces ?? new NonceCache()
  await init.mesh.handle(Protocol.blob, (ch) => serveOne(init, nonces, ch))
}

async function serveOne(init: ServeBlobsInit, nonces: NonceCache, ch: Channel): Promise<void> {
  let req: BlobRequest | undefined
  let started = false
  try {
    const raw = (await ch.nextJson<{ envelope?: unknown }>(init.requestTimeoutMs ?? 15_000))?.envelope
    req = open(raw, {
      kind: Kind.blobRequest,
      schema: BlobRequest,
      signer: ch.remote,
      nonces,
      maxTtlMs: MAX_BLOB_REQUEST_TTL_MS,
    }).payload
    const { sha256, offset } = req
    const unavailable = () =>
      new KilnError('INPUT_UNAVAILABLE', `lease ${req!.jobId} (${req!.escrowId}) names no blob ${sha256} here`, {
        sha256,
      })
    if (!(await init.authorize(ch.remote, req))) throw unavailable()
    let size: number
    try {
      size = init.store.size(sha256)
    } catch {
      throw unavailable()
    }
    if (offset > size)
      throw new KilnError('PAYLOAD_INVALID', `offset: ${offset} is past the end of blob ${sha256} (${size} bytes)`, {
        field: 'offset',
      })
    const bytes = size - offset
    const chunks = Math.ceil(bytes / OUTPUT_CHUNK_BYTES)
    await ch.sendJson({ t: 'blob', size, bytes, chunks } satisfies BlobFrame)
    started = true
    await sendChunks(ch, init.store.open(sha256, offset), chunks)
    init.log.info({ provider: ch.remote, jobId: req.jobId, sha256, offset, bytes }, 'blob served')
  } catch (e) {
    // Past the blob frame, an error frame would read as a chunk: the stream is reset instead
    // (the mesh aborts it), and the provider resumes from what it got.
    if (started) throw e
    const err = isKilnError(e) ? e : new KilnError('INPUT_UNAVAILABLE', 'the marketplace could not read the blob')
    init.log.warn(
      { provider: ch.remote, jobId: req?.jobId, sha256: req?.sha256, code: err.code, err: String(e) },
      'blob request refused',
    )
    const frame: BlobFrame = {
      t: 'error',
      error: { code: err.code, kind: err.kind, message: err.message.slice(0, 2000) },
    }
    await ch.sendJson(frame).catch(() => {})
  }
}

/**
 * The file's bytes as exactly `chunks` frames of OUTPUT_CHUNK_BYTES (the last shorter), read as
 * they are sent: the channel's backpressure paces the reads, so memory stays at a chunk or two.
 */
async function sendChunks(ch: Channel, file: AsyncIterable<Buffer>, chunks: number): Promise<void> {
  let pending: Buffer[] = []
  let held = 0
  let sent = 0
  for await (const piece of file) {
    pending.push(piece)
    held += piece.length
    while (held >= OUTPUT_CHUNK_BYTES) {
      const all = Buffer.concat(pending)
      await ch.send(all.subarray(0, OUTPUT_CHUNK_BYTES))
      sent++
      pending = [all.subarray(OUTPUT_CHUNK_BYTES)]
      held = all.length - OUTPUT_CHUNK_BYTES
    }
  }
  if (held > 0) {
    await ch.send(Buffer.concat(pending))
    sent++
  }
  // The file changed under us (it never should: blobs are named by their digest).
  if (sent !== chunks) throw new Error(`sent ${sent} chunks of the ${chunks} announced`)
}
