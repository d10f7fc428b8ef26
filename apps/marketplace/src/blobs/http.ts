import type { IncomingMessage, ServerResponse } from 'node:http'
import { httpStatusOf } from '@kiln/api'
import { isKilnError, KilnError, readerOf, requireReader, type Address } from '@kiln/protocol'
import { uploaderOf } from './auth.ts'
import type { BlobStore } from './store.ts'

/** The most bytes one PUT may carry: a client sends a big blob as several. */
export const MAX_CHUNK_BYTES = 64 * 1024 ** 2

export interface BlobRoutesInit {
  store: BlobStore
  /** This marketplace's arbiter address: tokens are bound to it. */
  audience: Address
  log: { warn(o: object, msg: string): void; error(o: object, msg: string): void }
  maxChunkBytes?: number
}

const ROUTE = /^\/blobs\/([0-9a-f]{64})$/

/**
 * `HEAD /blobs/<sha256>` (a read token): 200 and content-length when this client holds the blob
 * whole, else 404 with `upload-offset` (how much of its upload is kept; 0 for none, and for a
 * blob someone else uploaded: nobody learns what others hold).
 * `PUT /blobs/<sha256>?offset=<n>&size=<total>` (an upload token for that digest): appends one
 * chunk; 200 with `upload-offset` while incomplete, 201 once whole and verified; 409 with
 * `upload-offset` when `offset` is not where the upload stands.
 * Errors are JSON `{ code, kind, message, context }`. Returns false for a path it does not serve.
 */
export function blobRoutes(init: BlobRoutesInit): (req: IncomingMessage, res: ServerResponse, url: URL) => boolean {
  const maxChunkBytes = init.maxChunkBytes ?? MAX_CHUNK_BYTES
  return (req, res, url) => {
    const m = ROUTE.exec(url.pathname)
    if (!url.pathname.startsWith('/blobs/')) return false
    const sha256 = m?.[1]
    const answer =
      sha256 === undefined
        ? Promise.reject(
            new KilnError('PAYLOAD_INVALID', 'the path must be /blobs/<sha256>, 64 lower-case hex characters', {
              field: 'sha256',
            }),
          )
        : req.method === 'HEAD'
          ? head(init, sha256, req, res)
          : req.method === 'PUT'
            ? put(init, sha256, maxChunkBytes, req, res, url)
            : Promise.reject(new KilnError('PAYLOAD_INVALID', `${req.method} /blobs: only HEAD and PUT are served`))
    void answer.catch((e: unknown) => fail(init, res, sha256, e))
    return true
  }
}

async function head(init: BlobRoutesInit, sha256: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const client = requireReader(readerOf(req.headers.authorization, init.audience), 'uploads', { sha256 })
  const s = await init.store.status(client, sha256)
  if (s.complete) res.writeHead(200, { 'content-length': s.size, 'cache-control': 'private, no-store' }).end()
  else res.writeHead(404, { 'upload-offset': s.offset, 'cache-control': 'private, no-store' }).end()
}

async function put(
  init: BlobRoutesInit,
  sha256: string,
  maxChunkBytes: number,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
): Promise<void> {
  const client = uploaderOf(req.headers.authorization, init.audience, sha256)
  const offset = count(url, 'offset')
  const size = count(url, 'size')
  const declared = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length'])
  if (declared !== undefined && declared > maxChunkBytes)
    throw new KilnError(
      'INPUT_TOO_LARGE',
      `content-length: a request carries at most ${maxChunkBytes} bytes; send the blob in chunks`,
      { limit: 'chunk', maxBytes: maxChunkBytes },
    )
  const s = await init.store.write(client, sha256, { offset, size, maxChunkBytes }, req)
  if (s.complete) json(res, 201, { ok: true, sha256, size: s.size, complete: true })
  else json(res, 200, { ok: true, sha256, offset: s.offset, complete: false }, { 'upload-offset': String(s.offset) })
}

function count(url: URL, name: string): number {
  const raw = url.searchParams.get(name)
  if (raw === null || !/^\d{1,16}$/.test(raw) || !Number.isSafeInteger(Number(raw)))
    throw new KilnError('PAYLOAD_INVALID', `${name}: must be a whole number of bytes, such as ?${name}=0`, {
      field: name,
      issues: [{ path: name, message: `got ${JSON.stringify(raw)}`, expected: 'a non-negative integer' }],
    })
  return Number(raw)
}

function statusOf(e: KilnError): number {
  if (e.context.conflict === true) return 409
  if (e.kind === 'INPUT_TOO_LARGE') return 413
  if (e.kind === 'INPUT_DIGEST_MISMATCH') return 422
  if (e.kind.startsWith('ENVELOPE_')) return e.kind === 'ENVELOPE_WRONG_SIGNER' ? 403 : 401
  return httpStatusOf(e)
}

function fail(init: BlobRoutesInit, res: ServerResponse, sha256: string | undefined, e: unknown): void {
  const err = isKilnError(e)
    ? e
    : new KilnError('INTERNAL_ERROR', 'the marketplace failed to answer; it logged the details')
  if (!isKilnError(e)) init.log.error({ sha256, err: String(e) }, 'blob request failed')
  if (res.headersSent) return void res.destroy()
  const offset = err.context.expectedOffset
  // The body may be left unread (a refused chunk): the connection is not reused.
  json(res, statusOf(err), err.toJSON(), {
    connection: 'close',
    ...(typeof offset === 'number' ? { 'upload-offset': String(offset) } : {}),
  })
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers })
  res.end(res.req.method === 'HEAD' ? undefined : JSON.stringify(body))
}
