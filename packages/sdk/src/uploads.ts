import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { lstat, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable, Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { packCanonicalTarTo } from '@kiln/artifacts'
import {
  authorizationHeader,
  Kind,
  KilnError,
  kilnErrorFromJSON,
  seal,
  sealReadToken,
  type Address,
  type Identity,
} from '@kiln/protocol'
import { createKilnClient } from './client.ts'
import { unreachable } from './errors.ts'

export interface UploadTarget {
  /** The marketplace API, e.g. http://127.0.0.1:7700 */
  url: string
  identity: Identity
  /** The marketplace's arbiter address (tokens are bound to it); asked of the API when absent. */
  arbiter?: Address
}

export interface UploadOptions {
  /** Bytes the marketplace holds so far of `total` (skipped and resumed bytes count as done). */
  onProgress?(done: number, total: number): void
  signal?: AbortSignal
  /** Bytes per PUT; default 32 MiB (the marketplace takes at most 64 MiB a request). */
  chunkBytes?: number
  /** Where a folder's archive is packed before it is sent; default the system's temp folder. */
  tmpDir?: string
}

export interface UploadedInput {
  sha256: string
  size: number
  kind: 'file' | 'dir'
}

const DEFAULT_CHUNK_BYTES = 32 * 1024 ** 2
/** An upload token lives this long; a new one is sealed a minute before it ends. */
const UPLOAD_TOKEN_TTL_MS = 4 * 60_000
/** Requests that fail in transit are tried again this many times, each from where the store stands. */
const RETRIES = 3

/**
 * Puts a local file, or a folder as a canonical tar (the same files always give the same bytes,
 * so the same digest), in the marketplace's blob store, for a spec input `{ source: 'upload',
 * sha256, size, kind }`. Memory stays bounded: the file is hashed as it is read, a folder is
 * packed to a temporary file as it is walked, and chunks are streamed. It asks first what the
 * store keeps (HEAD): a blob this client uploaded before is not sent again, and a cut-off upload
 * resumes where it stopped.
 */
export async function uploadInput(to: UploadTarget, path: string, opts: UploadOptions = {}): Promise<UploadedInput> {
  const st = await lstat(path).catch((e: NodeJS.ErrnoException) => {
    throw new KilnError('SPEC_FILE_UNREADABLE', `cannot read input ${path}: ${e.code ?? e.message}`, { path })
  })
  if (!st.isFile() && !st.isDirectory())
    throw new KilnError('PAYLOAD_INVALID', `input ${path} is neither a file nor a folder`, { path })
  const kind = st.isDirectory() ? 'dir' : 'file'
  let tmp: string | undefined
  try {
    let file = path
    if (kind === 'dir') {
      tmp = await mkdtemp(join(opts.tmpDir ?? tmpdir(), 'kiln-upload-'))
      file = join(tmp, 'input.tar')
      await packFolder(path, file)
    }
    const { sha256, size } = await hashFile(file, opts.signal)
    await sendBlob(to, file, sha256, size, opts)
    return { sha256, size, kind }
  } finally {
    if (tmp) await rm(tmp, { recursive: true, force: true })
  }
}

async function sendBlob(
  to: UploadTarget,
  file: string,
  sha256: string,
  size: number,
  opts: UploadOptions,
): Promise<void> {
  const base = to.url.replace(/\/$/, '')
  const arbiter =
    to.arbiter ?? ((await createKilnClient({ url: base, identity: to.identity }).info()).arbiter as Address)
  let token: { header: string; renewAt: number } | undefined
  const uploadToken = (): string => {
    if (!token || Date.now() >= token.renewAt) {
      const t = seal(
        to.identity,
        Kind.read,
        { audience: arbiter, scope: 'blob:write', sha256 },
        {
          ttlMs: UPLOAD_TOKEN_TTL_MS,
        },
      )
      token = { header: authorizationHeader(t), renewAt: t.expiresAt - 60_000 }
    }
    return token.header
  }
  const url = `${base}/blobs/${sha256}`
  const progress = (done: number) => opts.onProgress?.(done, size)
  let failures = 0
  for (;;) {
    opts.signal?.throwIfAborted()
    try {
      const head = await request(base, url, {
        method: 'HEAD',
        headers: { authorization: authorizationHeader(sealReadToken(to.identity, arbiter)) },
        signal: opts.signal,
      })
      if (head.status === 200) return progress(size)
      let offset = uploadOffset(head, url)
      progress(offset)
      // A zero-byte blob is one empty PUT.
      do {
        const end = Math.min(size, offset + (opts.chunkBytes ?? DEFAULT_CHUNK_BYTES))
        const start = offset
        const body = createReadStream(file, { start, end: end - 1 }).pipe(
          new Transform({
            // Shown as the bytes leave; the marketplace's answer then says what it kept.
            transform(chunk: Buffer, _enc, cb) {
              progress(Math.min(end, (offset += chunk.length)))
              cb(null, chunk)
            },
          }),
        )
        const res = await request(base, `${url}?offset=${start}&size=${size}`, {
          method: 'PUT',
          headers: { authorization: uploadToken(), 'content-type': 'application/octet-stream' },
          body: size === 0 ? new Uint8Array(0) : (Readable.toWeb(body) as ReadableStream),
          duplex: 'half',
          signal: opts.signal,
        } as RequestInit)
        if (res.status === 201) return progress(size)
        if (res.status === 200 || res.status === 409) {
          offset = uploadOffset(res, url)
          await res.body?.cancel()
          continue
        }
        throw await refusal(res, url)
      } while (offset < size)
      return progress(size)
    } catch (e) {
      // A refusal is final; a broken connection is tried again from where the store stands.
      if (e instanceof KilnError && e.kind !== 'PEER_UNREACHABLE') throw e
      if (++failures > RETRIES) throw e
    }
  }
}

async function request(base: string, url: string, init: RequestInit): Promise<Response> {
  return fetch(url, init).catch((e: unknown) => {
    if ((e as Error).name === 'AbortError') throw e
    throw unreachable(base, (e as Error).cause ?? e)
  })
}

function uploadOffset(res: Response, url: string): number {
  const raw = res.headers.get('upload-offset')
  const n = raw === null ? NaN : Number(raw)
  if (Number.isSafeInteger(n) && n >= 0) return n
  throw new KilnError(
    'INPUT_UNAVAILABLE',
    `${url} answered HTTP ${res.status} without an upload-offset: not a Kiln blob store`,
    {
      status: res.status,
    },
  )
}

async function refusal(res: Response, url: string): Promise<KilnError> {
  const body = (await res.json().catch(() => undefined)) as unknown
  return (
    kilnErrorFromJSON(body) ??
    new KilnError('INPUT_UNAVAILABLE', `${url} refused the upload (HTTP ${res.status})`, { status: res.status })
  )
}

async function hashFile(file: string, signal?: AbortSignal): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256')
  let size = 0
  await pipeline(
    createReadStream(file),
    async function* (source: AsyncIterable<Buffer>) {
      for await (const chunk of source) {
        size += chunk.length
        yield chunk
      }
    },
    hash,
    signal ? { signal } : {},
  )
  return { sha256: hash.digest('hex'), size }
}

/** The folder as the canonical tar of @kiln/artifacts, streamed to `dest` (bounded memory). */
export const packFolder = packCanonicalTarTo
