import type { Channel, MeshNode } from '@kiln/mesh'
import { BlobFrame, Kind, KilnError, KilnErrorCode, Protocol, seal, type Address, type Identity } from '@kiln/protocol'
import type { BlobSource } from './fetch.ts'

export interface MeshBlobSourceOptions {
  mesh: Pick<MeshNode, 'open'>
  identity: Identity
  /** The marketplace peer that sent the lease (and serves its uploads). */
  marketplace: Address
  /** Where to dial it when not connected (its multiaddrs). */
  addrs?: string[]
  /** The lease the inputs belong to: the marketplace serves only digests this lease names. */
  jobId: string
  escrowId: string
  /** How long to wait for the answer frame. Default 30 s; the chunks' pace is fetchInput's stall timer. */
  answerTimeoutMs?: number
}

/**
 * A BlobSource over the mesh: for each request it opens Protocol.blob to the marketplace, sends
 * a `kiln/blob-request/1` envelope sealed by the provider ({jobId, escrowId, sha256, offset}),
 * reads the `blob` frame, then yields the raw chunks it announced. An `error` frame is thrown
 * as a KilnError of its kind (INPUT_UNAVAILABLE when the kind is not one we know).
 */
export function meshBlobSource(opts: MeshBlobSourceOptions): BlobSource {
  return async ({ sha256, offset }, signal) => {
    const ch = await opts.mesh.open(opts.marketplace, Protocol.blob, {
      signal,
      ...(opts.addrs ? { addrs: opts.addrs } : {}),
    })
    const onAbort = (): void =>
      ch.abort(signal.reason instanceof Error ? signal.reason : new Error('blob fetch aborted'))
    signal.addEventListener('abort', onAbort, { once: true })
    try {
      const payload = { jobId: opts.jobId, escrowId: opts.escrowId, sha256, offset }
      await ch.sendJson({ envelope: seal(opts.identity, Kind.blobRequest, payload, { ttlMs: 60_000 }) })
      const parsed = BlobFrame.safeParse(await ch.nextJson(opts.answerTimeoutMs ?? 30_000))
      if (!parsed.success)
        throw new KilnError(
          'INPUT_UNAVAILABLE',
          `the marketplace answered the blob request for ${sha256} with no blob frame`,
        )
      const frame = parsed.data
      if (frame.t === 'error') {
        const kind =
          frame.error.kind in KilnErrorCode ? (frame.error.kind as keyof typeof KilnErrorCode) : 'INPUT_UNAVAILABLE'
        throw new KilnError(kind, `the marketplace refused blob ${sha256}: ${frame.error.message}`, {
          remote: frame.error,
        })
      }
      if (frame.bytes !== frame.size - offset)
        throw new KilnError(
          'INPUT_UNAVAILABLE',
          `the marketplace announced ${frame.bytes} bytes of blob ${sha256} from offset ${offset}, but its size is ${frame.size}`,
        )
      return chunks(ch, frame.bytes, frame.chunks, signal, onAbort)
    } catch (e) {
      signal.removeEventListener('abort', onAbort)
      ch.abort(e instanceof Error ? e : new Error(String(e)))
      throw e
    }
  }
}

async function* chunks(
  ch: Channel,
  bytes: number,
  count: number,
  signal: AbortSignal,
  onAbort: () => void,
): AsyncIterable<Uint8Array> {
  let got = 0
  let clean = false
  try {
    for (let i = 0; i < count; i++) {
      const chunk = await ch.next()
      if (chunk === undefined) break
      got += chunk.byteLength
      if (got > bytes)
        throw new KilnError('INPUT_TOO_LARGE', `the marketplace sent more than the ${bytes} bytes it announced`)
      yield chunk
    }
    // Short is left to the caller (fetchInput resumes from where it stopped).
    clean = got === bytes
  } finally {
    signal.removeEventListener('abort', onAbort)
    if (clean) await ch.close()
    else ch.abort(new Error('blob transfer ended early'))
  }
}
