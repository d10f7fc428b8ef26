import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream, existsSync, mkdirSync, statSync } from 'node:fs'
import { readdir, readFile, rename, rm, stat, truncate, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { and, blobOwners, eq, sql, type Db } from '@kiln/db'
import { KilnError, type Address } from '@kiln/protocol'

/** The largest blob one upload may declare, by default (config: maxBlobBytes). */
export const DEFAULT_MAX_BLOB_BYTES = 5 * 1024 ** 3
/** What one client may hold in the store, whole and partial uploads together, by default (config: maxClientBytes). */
export const DEFAULT_MAX_CLIENT_BYTES = 20 * 1024 ** 3

const DIGEST = /^[0-9a-f]{64}$/

export interface BlobStoreInit {
  /** Where the bytes live: `<dir>/data/<sha256>` whole, `<dir>/partial/<client>/<sha256>` being uploaded. */
  dir: string
  db: Db
  maxBlobBytes?: number
  maxClientBytes?: number
}

/** Where one client's upload of one digest stands. */
export type BlobStatus = { complete: true; size: number } | { complete: false; offset: number }

export interface BlobWrite {
  /** Where this chunk starts: the bytes the store already has of this upload. */
  offset: number
  /** The whole blob's size, as the client declares it. */
  size: number
  /** The most bytes this one request may carry. */
  maxChunkBytes: number
}

export interface BlobStore {
  readonly maxBlobBytes: number
  readonly maxClientBytes: number
  /** Whether `client` uploaded `sha256` whole (the only clients who may name, fetch or ask about it). */
  owns(client: Address, sha256: string): Promise<boolean>
  /** The blob whole when this client holds it, else how much of its upload the store keeps (0: none). */
  status(client: Address, sha256: string): Promise<BlobStatus>
  /**
   * Appends one chunk of `client`'s upload of `sha256` at `offset`. The last chunk checks the
   * whole against the digest: a mismatch deletes the partial upload (INPUT_DIGEST_MISMATCH).
   * A chunk cut off midway keeps the bytes that arrived, so the upload resumes from there.
   */
  write(client: Address, sha256: string, w: BlobWrite, body: Readable): Promise<BlobStatus>
  /** A whole blob's size (whoever uploaded it: callers check ownership or a lease first). */
  size(sha256: string): number
  /** A whole blob's bytes from `start`. */
  open(sha256: string, start?: number): Readable
}

interface PartialMeta {
  size: number
}

/**
 * Uploaded inputs, by sha256, beside the artifact store. Dedupe is physical only: the bytes
 * of a digest are kept once, but a client holds a blob only once it has uploaded every byte
 * itself. A second client uploading the same bytes still sends them all, and HEAD answers it
 * 404 until it has: otherwise "is this digest here?" would tell anyone what others uploaded
 * (a known file's presence, a guessed document's exact bytes), and naming a digest would be
 * enough to read someone else's data.
 */
export function createBlobStore(init: BlobStoreInit): BlobStore {
  const maxBlobBytes = init.maxBlobBytes ?? DEFAULT_MAX_BLOB_BYTES
  const maxClientBytes = init.maxClientBytes ?? DEFAULT_MAX_CLIENT_BYTES
  const dataDir = join(init.dir, 'data')
  const partialRoot = join(init.dir, 'partial')
  mkdirSync(dataDir, { recursive: true })
  mkdirSync(partialRoot, { recursive: true })
  const whole = (sha256: string) => join(dataDir, checked(sha256))
  const partialDir = (client: Address) => join(partialRoot, client)
  const partial = (client: Address, sha256: string) => join(partialDir(client), checked(sha256))
  const metaOf = (client: Address, sha256: string) => `${partial(client, sha256)}.json`
  // One write at a time per (client, digest): a second concurrent PUT would interleave appends.
  const busy = new Set<string>()

  const owns = async (client: Address, sha256: string): Promise<boolean> => {
    if (!DIGEST.test(sha256)) return false
    const rows = await init.db
      .select({ size: blobOwners.size })
      .from(blobOwners)
      .where(and(eq(blobOwners.client, client), eq(blobOwners.sha256, sha256)))
    return rows.length > 0 && existsSync(whole(sha256))
  }

  const partialOffset = async (client: Address, sha256: string): Promise<number> =>
    stat(partial(client, sha256)).then(
      (s) => s.size,
      () => 0,
    )

  const readMeta = async (client: Address, sha256: string): Promise<PartialMeta | undefined> =>
    readFile(metaOf(client, sha256), 'utf8').then(
      (t) => JSON.parse(t) as PartialMeta,
      () => undefined,
    )

  const dropPartial = async (client: Address, sha256: string): Promise<void> => {
    await rm(partial(client, sha256), { force: true })
    await rm(metaOf(client, sha256), { force: true })
  }

  /** Bytes this client holds or has promised: its whole blobs and the declared sizes of its partial uploads. */
  const used = async (client: Address, except: string): Promise<number> => {
    const [row] = await init.db
      .select({ total: sql<string>`coalesce(sum(${blobOwners.size}), 0)` })
      .from(blobOwners)
      .where(eq(blobOwners.client, client))
    let total = Number(row?.total ?? 0)
    const names = await readdir(partialDir(client)).catch(() => [] as string[])
    for (const name of names) {
      const sha = name.endsWith('.json') ? name.slice(0, -5) : undefined
      if (sha === undefined || sha === except || !DIGEST.test(sha)) continue
      total += (await readMeta(client, sha))?.size ?? 0
    }
    return total
  }

  const complete = async (client: Address, sha256: string, size: number): Promise<BlobStatus> => {
    const file = partial(client, sha256)
    const hash = createHash('sha256')
    await pipeline(createReadStream(file), hash)
    const actual = hash.digest('hex')
    if (actual !== sha256) {
      await dropPartial(client, sha256)
      throw new KilnError(
        'INPUT_DIGEST_MISMATCH',
        `the ${size} bytes uploaded hash to ${actual}, not ${sha256}: the upload was deleted; upload the file again from offset 0`,
        { expected: sha256, actual },
      )
    }
    // The same bytes already stored (another client's, or this one's before): kept once.
    if (existsSync(whole(sha256))) await rm(file, { force: true })
    else await rename(file, whole(sha256))
    await rm(metaOf(client, sha256), { force: true })
    await init.db
      .insert(blobOwners)
      .values({ sha256, client, size, createdAt: Date.now() })
      .onConflictDoNothing({ target: [blobOwners.client, blobOwners.sha256] })
    return { complete: true, size }
  }

  return {
    maxBlobBytes,
    maxClientBytes,
    owns,
    async status(client, sha256) {
      checked(sha256)
      if (await owns(client, sha256)) return { complete: true, size: statSync(whole(sha256)).size }
      return { complete: false, offset: await partialOffset(client, sha256) }
    },
    async write(client, sha256, w, body) {
      checked(sha256)
      if (w.size > maxBlobBytes)
        throw new KilnError(
          'INPUT_TOO_LARGE',
          `size: a blob of ${w.size} bytes is over this marketplace's limit of ${maxBlobBytes} bytes per upload`,
          { limit: 'blob', size: w.size, maxBytes: maxBlobBytes },
        )
      if (await owns(client, sha256)) return { complete: true, size: statSync(whole(sha256)).size }
      const key = `${client}/${sha256}`
      if (busy.has(key))
        throw offsetConflict(sha256, await partialOffset(client, sha256), 'another upload of it is in progress')
      busy.add(key)
      try {
        const meta = await readMeta(client, sha256)
        let have = await partialOffset(client, sha256)
        // A fresh start with another size replaces what was kept (the client changed its mind).
        if (w.offset === 0 && meta !== undefined && meta.size !== w.size) {
          await dropPartial(client, sha256)
          have = 0
        }
        if (w.offset !== have) throw offsetConflict(sha256, have)
        if (meta !== undefined && meta.size !== w.size && w.offset > 0)
          throw new KilnError(
            'PAYLOAD_INVALID',
            `size: this upload of ${sha256} was started with size ${meta.size}, not ${w.size}; send size=${meta.size}, or start again at offset 0`,
            { expected: meta.size, size: w.size },
          )
        if (meta === undefined) {
          const holding = await used(client, sha256)
          if (holding + w.size > maxClientBytes)
            throw new KilnError(
              'INPUT_TOO_LARGE',
              `size: ${w.size} more bytes would put your uploads at ${holding + w.size} bytes, over this marketplace's limit of ${maxClientBytes} bytes per client`,
              { limit: 'client', size: w.size, used: holding, maxBytes: maxClientBytes },
            )
          mkdirSync(partialDir(client), { recursive: true })
          await writeFile(metaOf(client, sha256), JSON.stringify({ size: w.size } satisfies PartialMeta))
        }
        const room = Math.min(w.maxChunkBytes, w.size - have)
        const written = await appendBounded(partial(client, sha256), body, room)
        if (written.over) {
          // What came past the declared size or the request limit is not kept: the chunk is refused whole.
          await truncate(partial(client, sha256), have)
          throw new KilnError(
            'INPUT_TOO_LARGE',
            `the chunk at offset ${have} is over ${room} bytes: ${w.size - have} bytes of the blob are left and a request carries at most ${w.maxChunkBytes}`,
            { limit: 'chunk', offset: have, maxBytes: room },
          )
        }
        const offset = have + written.bytes
        if (offset === w.size) return await complete(client, sha256, w.size)
        return { complete: false, offset }
      } finally {
        busy.delete(key)
      }
    },
    size: (sha256) => statSync(whole(sha256)).size,
    open(sha256, start = 0) {
      if (!existsSync(whole(sha256))) throw new KilnError('INPUT_UNAVAILABLE', `no blob ${sha256} here`, { sha256 })
      return createReadStream(whole(sha256), { start })
    },
  }
}

function checked(sha256: string): string {
  if (!DIGEST.test(sha256))
    throw new KilnError('PAYLOAD_INVALID', `sha256: ${JSON.stringify(sha256)} is not 64 lower-case hex characters`, {
      field: 'sha256',
    })
  return sha256
}

/** A chunk sent for the wrong place: `expectedOffset` is where the upload resumes. */
export function offsetConflict(sha256: string, expectedOffset: number, why?: string): KilnError {
  return new KilnError(
    'PAYLOAD_INVALID',
    `offset: the upload of ${sha256} continues at offset ${expectedOffset}${why ? ` (${why})` : ''}; send the bytes from there`,
    { field: 'offset', expectedOffset, conflict: true },
  )
}

/**
 * Appends the stream to `file`, at most `max` bytes: what is past it is not written and `over`
 * says so. A stream that breaks off midway leaves what arrived (written, then the error ignored:
 * the next request resumes from the file's size).
 */
async function appendBounded(file: string, body: Readable, max: number): Promise<{ bytes: number; over: boolean }> {
  const out = createWriteStream(file, { flags: 'a' })
  let bytes = 0
  let over = false
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      if (bytes + chunk.length > max) {
        over = true
        body.destroy()
        break
      }
      bytes += chunk.length
      if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', r))
    }
  } catch {
    // The request was cut off: keep what arrived.
  } finally {
    await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())))
  }
  return { bytes, over }
}
