import { existsSync, statSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { sha256Hex } from '@kiln/protocol'
import { InputCache, removeTree } from '../src/inputs/cache.ts'

let dir: string
let clock = 1_000
const now = (): number => clock
const warnings: string[] = []
const log = { info: () => {}, warn: (_o: object, msg: string) => void warnings.push(msg) }

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiln-input-cache-'))
  warnings.length = 0
  clock = 1_000
})
afterEach(async () => {
  // Entries are read-only folders: removeTree unlocks them first (needed when not root).
  await removeTree(dir)
})

async function tmpFile(content: string): Promise<string> {
  const p = join(dir, `src-${Math.random().toString(36).slice(2)}`)
  await writeFile(p, content)
  return p
}

/** Admits `content` as a file entry of `bytes` and releases it. */
async function put(cache: InputCache, content: string, bytes = content.length): Promise<string> {
  const sha = sha256Hex(Buffer.from(content))
  clock += 10
  const release = await cache.admit(sha, 'file', await tmpFile(content), bytes)
  release()
  return sha
}

describe('InputCache', () => {
  it('admits read-only entries, counts their bytes and lists the most recently used first', async () => {
    const cache = await InputCache.open({ dir, maxBytes: 1000, now })
    const a = await put(cache, 'alpha')
    const b = await put(cache, 'beta')
    expect(cache.has(a) && cache.has(b)).toBe(true)
    expect(cache.totalBytes).toBe(9)
    expect(cache.list()).toEqual([b, a])
    expect(cache.list(1)).toEqual([b])
    clock += 10
    cache.pin(a)()
    expect(cache.list()).toEqual([a, b])
    const path = join(dir, 'blobs', a)
    expect(await readFile(path, 'utf8')).toBe('alpha')
    expect(statSync(path).mode & 0o777).toBe(0o444)
    expect(statSync(join(dir, 'blobs')).mode & 0o777).toBe(0o755)
  })

  it('evicts the least recently used unpinned entries to stay under budget', async () => {
    const cache = await InputCache.open({ dir, maxBytes: 30, now })
    const a = await put(cache, 'a'.repeat(10))
    const b = await put(cache, 'b'.repeat(10))
    const c = await put(cache, 'c'.repeat(10))
    clock += 10
    cache.pin(a)() // a is now newer than b
    const d = await put(cache, 'd'.repeat(10))
    expect(cache.has(b)).toBe(false)
    expect([a, c, d].every((x) => cache.has(x))).toBe(true)
    expect(cache.totalBytes).toBe(30)
    expect(existsSync(join(dir, 'blobs', b))).toBe(false)
  })

  it('never evicts a pinned entry, and admits over budget (with a warning) when the pins alone fill it', async () => {
    const cache = await InputCache.open({ dir, maxBytes: 20, now, log })
    const a = sha256Hex(Buffer.from('a'.repeat(10)))
    const releaseA = await cache.admit(a, 'file', await tmpFile('a'.repeat(10)), 10)
    const b = sha256Hex(Buffer.from('b'.repeat(10)))
    const releaseB = await cache.admit(b, 'file', await tmpFile('b'.repeat(10)), 10)
    const c = await put(cache, 'c'.repeat(10))
    expect([a, b, c].every((x) => cache.has(x))).toBe(true)
    expect(cache.totalBytes).toBe(30)
    expect(warnings).toContain('input cache over its budget: the entries in use alone do not fit')
    // Released, a is the oldest unpinned one and goes first; b is still pinned.
    releaseA()
    releaseA() // a second call is a no-op, not a second unpin
    const releaseB2 = cache.pin(b)
    releaseB()
    const d = await put(cache, 'd'.repeat(10))
    expect(cache.has(b)).toBe(true)
    expect(cache.has(a)).toBe(false)
    expect(cache.has(d)).toBe(true)
    expect(cache.totalBytes).toBeLessThanOrEqual(30)
    releaseB2()
    expect(cache.isPinned(b)).toBe(false)
  })

  it('refuses to pin what it does not hold', async () => {
    const cache = await InputCache.open({ dir, maxBytes: 100 })
    expect(() => cache.pin('f'.repeat(64))).toThrow(/not in the cache/)
  })

  it('keeps last use across a reopen, sweeps tmp/, drops strays, and rebuilds entries the index misses', async () => {
    const cache = await InputCache.open({ dir, maxBytes: 1000, now })
    const a = await put(cache, 'alpha')
    const b = await put(cache, 'beta')
    clock += 10
    cache.pin(a)()
    await writeFile(join(cache.tmpDir, 'partial'), 'half a download')
    await writeFile(join(dir, 'blobs', 'not-a-digest'), 'x')
    // An entry on disk the index does not know (as after a crash between rename and index write).
    const lone = sha256Hex(Buffer.from('lone'))
    await writeFile(join(dir, 'blobs', lone), 'lone')
    await mkdir(join(dir, 'trees', 'e'.repeat(64), 'sub'), { recursive: true })
    await writeFile(join(dir, 'trees', 'e'.repeat(64), 'sub', 'f'), '123456')

    const again = await InputCache.open({ dir, maxBytes: 1000, now })
    // Rebuilt entries take their mtime (a real clock, far ahead of this fake one) as last use.
    expect(again.list().filter((x) => x === a || x === b)).toEqual([a, b])
    expect(again.has(lone)).toBe(true)
    expect(again.get('e'.repeat(64))).toMatchObject({ kind: 'dir', bytes: 6 })
    expect(again.totalBytes).toBe(5 + 4 + 4 + 6)
    expect(await readdir(again.tmpDir)).toEqual([])
    expect(existsSync(join(dir, 'blobs', 'not-a-digest'))).toBe(false)
  })

  it('admits a folder read-only (0555 folders, 0444 files) and evicts it again', async () => {
    const cache = await InputCache.open({ dir, maxBytes: 10, now })
    const tree = join(cache.tmpDir, 'tree')
    await mkdir(join(tree, 'sub'), { recursive: true })
    await writeFile(join(tree, 'sub', 'f.txt'), 'hello')
    const sha = 'a'.repeat(64)
    ;(await cache.admit(sha, 'dir', tree, 8))()
    const path = join(dir, 'trees', sha)
    expect(statSync(path).mode & 0o777).toBe(0o555)
    expect(statSync(join(path, 'sub')).mode & 0o777).toBe(0o555)
    expect(statSync(join(path, 'sub', 'f.txt')).mode & 0o777).toBe(0o444)
    await put(cache, 'x'.repeat(8))
    expect(cache.has(sha)).toBe(false)
    // The evicted tree is deleted in the background; a reopen sweeps whatever is left.
    await InputCache.open({ dir, maxBytes: 10 })
    expect(existsSync(path)).toBe(false)
    expect(await readdir(join(dir, 'tmp'))).toEqual([])
  })

  it('runs one fetch per digest at a time', async () => {
    const cache = await InputCache.open({ dir, maxBytes: 10 })
    let runs = 0
    const work = async (): Promise<void> => {
      runs++
      await new Promise((r) => setTimeout(r, 20))
    }
    await Promise.all([cache.coalesce('a'.repeat(64), work), cache.coalesce('a'.repeat(64), work)])
    expect(runs).toBe(1)
    await cache.coalesce('a'.repeat(64), work)
    expect(runs).toBe(2)
  })
})
