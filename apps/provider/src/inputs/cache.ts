import { randomBytes } from 'node:crypto'
import { lstatSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { chmod, lstat, mkdir, readdir, rename, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { KilnError } from '@kiln/protocol'
import type { Logger } from '../log.ts'

/**
 * A content-addressed store of job inputs on the provider's disk:
 *   <dir>/blobs/<sha256>    a file input's bytes (0444)
 *   <dir>/trees/<sha256>/   a folder input, unpacked from its canonical archive (0555 dirs, 0444 files)
 *   <dir>/tmp/              partial downloads and half-unpacked folders; never cached, emptied at open
 *   <dir>/index.json        kind, bytes and last use of each entry
 *
 * Last use is kept in the index rather than in atime or mtime: atime is coarse or frozen on
 * relatime/noatime mounts, touching the mtime of a read-only tree means writing to its
 * folder, and the index also keeps each tree's byte count, so opening the cache does not walk
 * every tree. The index is rewritten whole (tmp + rename), so a crash leaves the old one or the
 * new one; entries it misses are rebuilt from the disk at open.
 */

export type CacheKind = 'file' | 'dir'

export interface CacheEntry {
  sha256: string
  kind: CacheKind
  /** What the entry counts against the budget: the declared size of its bytes (of the archive, for a folder). */
  bytes: number
  lastUsed: number
  /** The file (blobs/) or folder (trees/) to mount. */
  path: string
}

export interface InputCacheOptions {
  dir: string
  /** The byte budget; least recently used unpinned entries are evicted to stay under it. */
  maxBytes: number
  log?: Logger
  now?: () => number
}

interface IndexFile {
  v: 1
  entries: { sha256: string; kind: CacheKind; bytes: number; lastUsed: number }[]
}

const DIGEST = /^[0-9a-f]{64}$/
const silent: Logger = { info: () => {}, warn: () => {} }

export class InputCache {
  readonly dir: string
  readonly maxBytes: number
  readonly #log: Logger
  readonly #now: () => number
  readonly #entries = new Map<string, CacheEntry>()
  readonly #pins = new Map<string, number>()
  readonly #inflight = new Map<string, Promise<void>>()
  #total = 0

  private constructor(opts: InputCacheOptions) {
    this.dir = opts.dir
    this.maxBytes = opts.maxBytes
    this.#log = opts.log ?? silent
    this.#now = opts.now ?? Date.now
  }

  /** Opens (creating) the cache at `opts.dir`: empties tmp/, and squares the index with what is on disk. */
  static async open(opts: InputCacheOptions): Promise<InputCache> {
    if (!Number.isSafeInteger(opts.maxBytes) || opts.maxBytes < 0)
      throw new KilnError('CONFIG_INVALID', `input cache maxBytes is ${opts.maxBytes}; it must be a whole number >= 0`)
    const cache = new InputCache(opts)
    await cache.#load()
    return cache
  }

  get tmpDir(): string {
    return join(this.dir, 'tmp')
  }

  /** Bytes the admitted entries count, pinned or not. */
  get totalBytes(): number {
    return this.#total
  }

  has(sha256: string): boolean {
    return this.#entries.has(sha256)
  }

  get(sha256: string): CacheEntry | undefined {
    const e = this.#entries.get(sha256)
    return e && { ...e }
  }

  /** Digests of up to `limit` entries, most recently used first (the advert's cache field). */
  list(limit = Number.POSITIVE_INFINITY): string[] {
    return [...this.#entries.values()]
      .sort((a, b) => b.lastUsed - a.lastUsed)
      .slice(0, limit)
      .map((e) => e.sha256)
  }

  isPinned(sha256: string): boolean {
    return (this.#pins.get(sha256) ?? 0) > 0
  }

  /**
   * Keeps `sha256` from eviction until the returned release is called (once; later calls do
   * nothing). Pinning and releasing both count as a use. Throws when the entry is not cached.
   */
  pin(sha256: string): () => void {
    const entry = this.#entries.get(sha256)
    if (!entry) throw new KilnError('INTERNAL_ERROR', `input ${sha256} is not in the cache, so it cannot be pinned`)
    this.#pins.set(sha256, (this.#pins.get(sha256) ?? 0) + 1)
    this.#touch(entry)
    let released = false
    return () => {
      if (released) return
      released = true
      const n = (this.#pins.get(sha256) ?? 1) - 1
      if (n > 0) this.#pins.set(sha256, n)
      else this.#pins.delete(sha256)
      const e = this.#entries.get(sha256)
      if (e) this.#touch(e)
    }
  }

  /** A fresh path under tmp/ for a download or an unpack; nothing there is ever treated as cached. */
  tmpPath(label: string): string {
    return join(this.tmpDir, `${label}-${randomBytes(6).toString('hex')}`)
  }

  /**
   * Runs `work` once per digest at a time: a second caller for the same digest waits on the
   * first one's promise instead of downloading the same bytes again.
   */
  async coalesce(sha256: string, work: () => Promise<void>): Promise<void> {
    const running = this.#inflight.get(sha256)
    if (running) return running
    const p = work().finally(() => this.#inflight.delete(sha256))
    this.#inflight.set(sha256, p)
    return p
  }

  /**
   * Moves a verified file or unpacked folder from tmp/ into the cache, read-only for everyone,
   * and returns it pinned (the release): pinned in the same turn as it becomes visible, so no
   * other admission can evict it first. Makes room by evicting; admits over budget (and logs)
   * when the pinned entries alone leave no room, because a full cache must not fail a job.
   */
  async admit(sha256: string, kind: CacheKind, from: string, bytes: number): Promise<() => void> {
    if (!DIGEST.test(sha256)) throw new KilnError('INTERNAL_ERROR', `not a sha256 digest: ${sha256}`)
    if (this.#entries.has(sha256)) {
      await rm(from, { recursive: true, force: true })
      return this.pin(sha256)
    }
    await (kind === 'file' ? chmod(from, 0o444) : lockTree(from))
    this.#makeRoom(bytes)
    // Counted from now, so an admission that runs while this rename is under way makes room for both.
    this.#total += bytes
    const path = this.#pathOf(sha256, kind)
    try {
      await rename(from, path)
    } catch (e) {
      this.#total -= bytes
      throw e
    }
    const entry: CacheEntry = { sha256, kind, bytes, lastUsed: this.#now(), path }
    this.#entries.set(sha256, entry)
    if (this.#total > this.maxBytes)
      this.#log.warn(
        { sha256, bytes, totalBytes: this.#total, maxBytes: this.maxBytes },
        'input cache over its budget: the entries in use alone do not fit',
      )
    return this.pin(sha256)
  }

  #pathOf(sha256: string, kind: CacheKind): string {
    return join(this.dir, kind === 'file' ? 'blobs' : 'trees', sha256)
  }

  /**
   * Evicts least recently used unpinned entries until `incoming` more bytes fit. The choice and
   * the removal from the index happen in this one turn; each entry is renamed into tmp/ at once
   * (so its digest's path is free) and deleted from there in the background.
   */
  #makeRoom(incoming: number): void {
    if (this.#total + incoming <= this.maxBytes) return
    const victims = [...this.#entries.values()]
      .filter((e) => !this.isPinned(e.sha256))
      .sort((a, b) => a.lastUsed - b.lastUsed)
    for (const v of victims) {
      if (this.#total + incoming <= this.maxBytes) break
      this.#entries.delete(v.sha256)
      this.#total -= v.bytes
      const grave = this.tmpPath(`evicted-${v.sha256.slice(0, 12)}`)
      try {
        renameSync(v.path, grave)
      } catch (e) {
        this.#log.warn({ sha256: v.sha256, err: (e as Error).message }, 'could not move an evicted input aside')
        continue
      }
      this.#log.info({ sha256: v.sha256, bytes: v.bytes }, 'input evicted from the cache')
      void removeTree(grave).catch((e: Error) =>
        this.#log.warn({ path: grave, err: e.message }, 'could not delete an evicted input'),
      )
    }
    this.#save()
  }

  #touch(entry: CacheEntry): void {
    // Strictly increasing, so two uses in one millisecond still order.
    entry.lastUsed = Math.max(this.#now(), entry.lastUsed + 1)
    this.#save()
  }

  /**
   * The index is small (a line per entry) and written synchronously: writes then never
   * interleave, and the file always matches the map at the end of a turn.
   */
  #save(): void {
    const index: IndexFile = {
      v: 1,
      entries: [...this.#entries.values()].map(({ sha256, kind, bytes, lastUsed }) => ({
        sha256,
        kind,
        bytes,
        lastUsed,
      })),
    }
    const tmp = join(this.dir, `index.json.${process.pid}.tmp`)
    writeFileSync(tmp, JSON.stringify(index))
    renameSync(tmp, join(this.dir, 'index.json'))
  }

  async #load(): Promise<void> {
    // Readable (and traversable) by the container's non-root user; only the provider writes.
    for (const sub of ['', 'blobs', 'trees']) {
      await mkdir(join(this.dir, sub), { recursive: true })
      await chmod(join(this.dir, sub), 0o755)
    }
    await removeTree(this.tmpDir)
    await mkdir(this.tmpDir, { mode: 0o700 })

    const known = new Map<string, IndexFile['entries'][number]>()
    try {
      const index = JSON.parse(readFileSync(join(this.dir, 'index.json'), 'utf8')) as IndexFile
      for (const e of index.entries ?? []) known.set(`${e.kind}:${e.sha256}`, e)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
        this.#log.warn({ err: (e as Error).message }, 'input cache index unreadable; rebuilding it from the disk')
    }
    for (const kind of ['file', 'dir'] as const) {
      const parent = join(this.dir, kind === 'file' ? 'blobs' : 'trees')
      for (const name of readdirSync(parent)) {
        const path = join(parent, name)
        const st = lstatSync(path)
        const shaped = DIGEST.test(name) && (kind === 'file' ? st.isFile() : st.isDirectory())
        // Anything else (a stray name, a symlink) is not ours to mount.
        if (!shaped || this.#entries.has(name)) {
          await removeTree(path)
          continue
        }
        const rec = known.get(`${kind}:${name}`)
        const bytes = rec?.bytes ?? (kind === 'file' ? st.size : await treeBytes(path))
        this.#entries.set(name, { sha256: name, kind, bytes, lastUsed: rec?.lastUsed ?? st.mtimeMs, path })
        this.#total += bytes
      }
    }
    this.#save()
  }
}

/** Read-only for everyone: files 0444, folders 0555 (deepest first, so every chmod can still reach). */
async function lockTree(dir: string): Promise<void> {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) await lockTree(p)
    else await chmod(p, 0o444)
  }
  await chmod(dir, 0o555)
}

/** rm -rf, first making read-only folders writable again (a non-root owner cannot unlink inside a 0555 folder). */
export async function removeTree(path: string): Promise<void> {
  // lstat: a symlink is removed itself, never followed and unlocked.
  const st = await lstat(path).catch(() => undefined)
  if (st?.isDirectory()) {
    const unlock = async (dir: string): Promise<void> => {
      await chmod(dir, 0o700)
      for (const e of await readdir(dir, { withFileTypes: true })) if (e.isDirectory()) await unlock(join(dir, e.name))
    }
    await unlock(path).catch(() => {})
  }
  await rm(path, { recursive: true, force: true })
}

async function treeBytes(dir: string): Promise<number> {
  let n = 0
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true }))
    if (e.isFile()) n += (await stat(join(e.parentPath, e.name))).size
  return n
}
