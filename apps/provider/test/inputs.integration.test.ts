import { createHash, randomBytes } from 'node:crypto'
import { statSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises'
import { createServer, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pack as tarPack } from 'tar-stream'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { KilnError, sha256Hex, type JobInput } from '@kiln/protocol'
import { packCanonicalTar } from '@kiln/artifacts'
import { InputCache, removeTree } from '../src/inputs/cache.ts'
import { fetchInput, type BlobSource } from '../src/inputs/fetch.ts'
import { prepareInputs } from '../src/inputs/prepare.ts'

// A real node:http server on loopback and a real cache folder. URLs are http:// with
// allowHttp, the option fetchInput has for exactly this (specs themselves carry https:// only).

const GOOD = Buffer.from('the weights of a small model\n'.repeat(200))
const BIG = 50 * 1024 * 1024
const bigChunk = randomBytes(1024 * 1024)
let bigSha: string
let server: Server
let base: string
let dir: string
let cache: InputCache

const routes: Record<string, (res: ServerResponse, range?: string) => void> = {
  '/good': (res) => res.end(GOOD),
  '/wrong': (res) => res.end(Buffer.from(GOOD).fill(0x41, 0, 10)),
  '/missing': (res) => {
    res.statusCode = 404
    res.end('no such file')
  },
  // Half the bytes, then silence (the connection stays open).
  '/stall': (res) => {
    res.setHeader('content-length', GOOD.length)
    res.write(GOOD.subarray(0, 100))
  },
  // More than declared, with no length header, so only counting can catch it.
  '/toolong': (res) => {
    res.write(GOOD)
    res.end(Buffer.from('extra'))
  },
  '/redirect-good': (res) => {
    res.statusCode = 302
    res.setHeader('location', '/good')
    res.end()
  },
  '/redirect-ftp': (res) => {
    res.statusCode = 302
    res.setHeader('location', 'ftp://example.invalid/good')
    res.end()
  },
  '/big': (res) => {
    res.setHeader('content-length', BIG)
    let sent = 0
    const pump = (): void => {
      while (sent < BIG) {
        sent += bigChunk.length
        if (!res.write(bigChunk)) return void res.once('drain', pump)
      }
      res.end()
    }
    pump()
  },
  // Drops the connection after 1000 bytes the first time; honours Range after that.
  '/flaky': (res, range) => {
    const from = range ? Number(/bytes=(\d+)-/.exec(range)?.[1]) : 0
    if (from === 0) {
      res.setHeader('content-length', GOOD.length)
      res.write(GOOD.subarray(0, 1000), () => res.destroy())
      return
    }
    res.statusCode = 206
    res.setHeader('content-range', `bytes ${from}-${GOOD.length - 1}/${GOOD.length}`)
    res.end(GOOD.subarray(from))
  },
}

const input = (path: string, over: Partial<JobInput> = {}): JobInput => ({
  name: path.slice(1).replace(/\//g, '_') || 'x',
  source: `${base}${path}`,
  sha256: sha256Hex(GOOD),
  size: GOOD.length,
  kind: 'file',
  ...over,
})

async function failure(p: Promise<unknown>): Promise<KilnError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  )
  expect(e).toBeInstanceOf(KilnError)
  return e as KilnError
}

/** The cache has no entry and nothing in tmp/. */
async function expectCacheEmpty(): Promise<void> {
  expect(cache.list()).toEqual([])
  expect(await readdir(join(dir, 'blobs'))).toEqual([])
  expect(await readdir(join(dir, 'trees'))).toEqual([])
  expect(await readdir(cache.tmpDir)).toEqual([])
}

beforeAll(async () => {
  const h = createHash('sha256')
  for (let i = 0; i < BIG / bigChunk.length; i++) h.update(bigChunk)
  bigSha = h.digest('hex')
  server = createServer((req, res) => {
    const route = routes[req.url ?? '']
    if (!route) {
      res.statusCode = 500
      return void res.end()
    }
    route(res, req.headers.range)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
afterAll(async () => {
  server.closeAllConnections()
  await new Promise((r) => server.close(r))
})
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiln-inputs-it-'))
  cache = await InputCache.open({ dir, maxBytes: 200 * 1024 * 1024 })
})
afterEach(async () => {
  await removeTree(dir)
})

const prep = (inputs: JobInput[], over: Partial<Parameters<typeof prepareInputs>[1]> = {}) =>
  prepareInputs(inputs, { cache, allowHttp: true, stallMs: 500, ...over })

describe('prepareInputs over real HTTP', () => {
  it('fetches, verifies, admits read-only and pins; the second job finds it cached', async () => {
    const progress: [number, number][] = []
    const first = await prep([input('/good')], { onProgress: (d, t) => progress.push([d, t]) })
    expect(first.fetchedBytes).toBe(GOOD.length)
    expect(first.cachedBytes).toBe(0)
    expect(first.mounts).toEqual([
      { hostPath: join(dir, 'blobs', sha256Hex(GOOD)), containerPath: '/in/good', readOnly: true },
    ])
    expect(await readFile(first.mounts[0]!.hostPath)).toEqual(GOOD)
    expect(statSync(first.mounts[0]!.hostPath).mode & 0o777).toBe(0o444)
    expect(progress.at(0)).toEqual([0, GOOD.length])
    expect(progress.at(-1)).toEqual([GOOD.length, GOOD.length])
    expect(cache.isPinned(sha256Hex(GOOD))).toBe(true)
    first.release()
    expect(cache.isPinned(sha256Hex(GOOD))).toBe(false)

    const second = await prep([input('/missing', { name: 'again', mount: '/in/models/w' })])
    expect(second).toMatchObject({ fetchedBytes: 0, cachedBytes: GOOD.length })
    expect(second.mounts[0]).toMatchObject({ containerPath: '/in/models/w', hostPath: first.mounts[0]!.hostPath })
    second.release()
  })

  it('follows a redirect, and refuses one to anything but http(s)', async () => {
    await prep([input('/redirect-good')]).then((p) => p.release())
    expect(cache.has(sha256Hex(GOOD))).toBe(true)
    const e = await failure(fetchInput(input('/redirect-ftp'), {}, { tmpPath: cache.tmpPath('t'), allowHttp: true }))
    expect(e.kind).toBe('INPUT_UNAVAILABLE')
    expect(e.message).toMatch(/https:\/\/ only/)
  })

  it('refuses a plain http URL without allowHttp', async () => {
    const e = await failure(prepareInputs([input('/good')], { cache }))
    expect(e.kind).toBe('INPUT_UNAVAILABLE')
    await expectCacheEmpty()
  })

  it.each([
    ['/wrong', 'INPUT_DIGEST_MISMATCH', /hash to [0-9a-f]{64}, not the sha256/],
    ['/missing', 'INPUT_UNAVAILABLE', /HTTP 404/],
    ['/stall', 'INPUT_UNAVAILABLE', /stalled/],
    ['/toolong', 'INPUT_TOO_LARGE', /more than the \d+ bytes/],
  ])('%s fails %s and leaves nothing in the cache', async (path, kind, message) => {
    const e = await failure(prep([input(path)]))
    expect(e.kind).toBe(kind)
    expect(e.message).toMatch(message)
    await expectCacheEmpty()
  })

  it('a refused connection is INPUT_UNAVAILABLE', async () => {
    const spare = createServer()
    await new Promise<void>((r) => spare.listen(0, '127.0.0.1', r))
    const port = (spare.address() as AddressInfo).port
    await new Promise((r) => spare.close(r))
    const e = await failure(prep([input('/good', { source: `http://127.0.0.1:${port}/good` })]))
    expect(e.kind).toBe('INPUT_UNAVAILABLE')
    expect(e.message).toMatch(/ECONNREFUSED/)
    await expectCacheEmpty()
  })

  it('the deadline is INPUT_FETCH_TIMEOUT, and the job abort stops the fetch', async () => {
    const e = await failure(prep([input('/stall')], { stallMs: 10_000, deadlineMs: 300 }))
    expect(e.kind).toBe('INPUT_FETCH_TIMEOUT')
    await expectCacheEmpty()
    const ac = new AbortController()
    setTimeout(() => ac.abort(), 200)
    const c = await failure(prep([input('/stall')], { stallMs: 10_000, signal: ac.signal }))
    expect(c.context).toMatchObject({ cancelled: true })
    await expectCacheEmpty()
  })

  it('a failure releases the pins already taken for the job', async () => {
    await prep([input('/good')]).then((p) => p.release())
    const e = await failure(prep([input('/good', { name: 'ok' }), input('/missing', { sha256: 'b'.repeat(64) })]))
    expect(e.kind).toBe('INPUT_UNAVAILABLE')
    expect(cache.isPinned(sha256Hex(GOOD))).toBe(false)
  })

  it('resumes a dropped HTTP transfer with a Range request', async () => {
    const p = await prep([input('/flaky')])
    expect(await readFile(p.mounts[0]!.hostPath)).toEqual(GOOD)
    p.release()
  })

  it('evicts under a small budget, never the entry a running job pins', async () => {
    const small = await InputCache.open({ dir: join(dir, 'small'), maxBytes: GOOD.length + 10 })
    const running = await prepareInputs([input('/good')], { cache: small, allowHttp: true })
    const blob = async (content: Buffer): Promise<JobInput> => {
      const name = `b${content[0]}`
      const sha = sha256Hex(content)
      return { name, source: 'upload', sha256: sha, size: content.length, kind: 'file' }
    }
    const other = Buffer.alloc(GOOD.length, 7)
    const source: BlobSource = async ({ offset }) =>
      (async function* () {
        yield other.subarray(offset)
      })()
    // Pinned GOOD plus `other` exceed the budget: admitted over budget, nothing evicted.
    const next = await prepareInputs([await blob(other)], { cache: small, blobs: source })
    expect(small.has(sha256Hex(GOOD)) && small.has(sha256Hex(other))).toBe(true)
    next.release()
    running.release()
    // Now both are unpinned: a third one evicts the least recently used (GOOD, released first... then other).
    const third = Buffer.alloc(GOOD.length, 9)
    const s3: BlobSource = async ({ offset }) =>
      (async function* () {
        yield third.subarray(offset)
      })()
    await prepareInputs([await blob(third)], { cache: small, blobs: s3 }).then((p) => p.release())
    expect(small.has(sha256Hex(third))).toBe(true)
    expect(small.list()).toEqual([sha256Hex(third)])
    expect(small.totalBytes).toBe(GOOD.length)
  })

  it('fetches 50 MB with bounded memory', async () => {
    // Garbage chunks are freed only when V8 collects (it lets ~60 MB of buffers pile up first,
    // whatever the input's size), so the sampler collects before each reading: what remains is
    // what the fetch holds. Holding the input whole would hold 50 MB.
    setFlagsFromString('--expose-gc')
    const gc = runInNewContext('gc') as () => void
    const live = (): number => {
      const m = process.memoryUsage()
      return m.heapUsed + m.arrayBuffers
    }
    gc()
    const rssBefore = process.memoryUsage().rss
    const liveBefore = live()
    let rssPeak = rssBefore
    let livePeak = liveBefore
    const timer = setInterval(() => {
      gc()
      rssPeak = Math.max(rssPeak, process.memoryUsage().rss)
      livePeak = Math.max(livePeak, live())
    }, 20)
    const p = await prep([input('/big', { sha256: bigSha, size: BIG })]).finally(() => clearInterval(timer))
    expect(statSync(p.mounts[0]!.hostPath).size).toBe(BIG)
    expect(p.fetchedBytes).toBe(BIG)
    expect(livePeak - liveBefore).toBeLessThan(BIG / 2)
    expect(rssPeak - rssBefore).toBeLessThan(BIG)
    p.release()
  })
})

describe('folder inputs', () => {
  const source =
    (bytes: Buffer): BlobSource =>
    async ({ offset }) =>
      (async function* () {
        for (let at = offset; at < bytes.length; at += 4096) yield bytes.subarray(at, Math.min(bytes.length, at + 4096))
      })()

  it('unpacks a canonical archive into a read-only tree and mounts it as a folder', async () => {
    const src = await mkdtemp(join(tmpdir(), 'kiln-dir-input-'))
    await mkdir(join(src, 'sub'))
    await writeFile(join(src, 'a.txt'), 'alpha\n')
    await writeFile(join(src, 'sub', 'b.txt'), 'beta\n')
    const packed = await packCanonicalTar(src)
    const dirInput: JobInput = {
      name: 'data',
      source: 'upload',
      sha256: packed.digest,
      size: packed.bytes,
      kind: 'dir',
    }
    const p = await prepareInputs([dirInput], { cache, blobs: source(packed.tar) })
    const root = p.mounts[0]!.hostPath
    expect(root).toBe(join(dir, 'trees', packed.digest))
    expect(await readFile(join(root, 'sub', 'b.txt'), 'utf8')).toBe('beta\n')
    expect(statSync(join(root, 'sub')).mode & 0o777).toBe(0o555)
    expect(statSync(join(root, 'a.txt')).mode & 0o777).toBe(0o444)
    expect(await readdir(cache.tmpDir)).toEqual([])
    p.release()
    await removeTree(src)
  })

  it.each([
    ['../escape', 'file', /'\.\.' segment/],
    ['/etc/passwd', 'file', /absolute path/],
    ['link', 'symlink', /only regular files and folders/],
  ])('refuses an archive with %s (%s)', async (name, type, message) => {
    const pack = tarPack()
    const parts: Buffer[] = []
    pack.on('data', (c: unknown) => {
      parts.push(c as Buffer)
    })
    const ended = new Promise<void>((r) => pack.on('end', () => r()))
    pack.entry({ name: 'ok.txt' }, 'fine')
    if (type === 'symlink') pack.entry({ name, type: 'symlink', linkname: '/etc' })
    else pack.entry({ name }, 'bad')
    pack.finalize()
    await ended
    const tar = Buffer.concat(parts)
    const e = await failure(
      prepareInputs([{ name: 'd', source: 'upload', sha256: sha256Hex(tar), size: tar.length, kind: 'dir' }], {
        cache,
        blobs: source(tar),
      }),
    )
    expect(e.kind).toBe('PAYLOAD_INVALID')
    expect(e.message).toMatch(message)
    await expectCacheEmpty()
  })
})

describe('blob sources', () => {
  it('resumes from the offset reached when a blob stream breaks', async () => {
    const offsets: number[] = []
    const flaky: BlobSource = async ({ sha256, offset }) => {
      expect(sha256).toBe(sha256Hex(GOOD))
      offsets.push(offset)
      return (async function* () {
        yield GOOD.subarray(offset, offset + 1500)
        if (offset + 1500 < GOOD.length) throw new Error('stream reset')
      })()
    }
    const p = await prepareInputs(
      [{ name: 'up', source: 'upload', sha256: sha256Hex(GOOD), size: GOOD.length, kind: 'file' }],
      {
        cache,
        blobs: flaky,
      },
    )
    expect(offsets).toEqual([0, 1500, 3000, 4500])
    expect(await readFile(p.mounts[0]!.hostPath)).toEqual(GOOD)
    p.release()
  })

  it('gives up when resumes make no progress, and leaves nothing', async () => {
    const dead: BlobSource = async () => {
      throw new Error('connection reset')
    }
    const e = await failure(
      prepareInputs(
        [{ name: 'up', source: 'job:job_0123456789', sha256: sha256Hex(GOOD), size: GOOD.length, kind: 'file' }],
        {
          cache,
          blobs: dead,
        },
      ),
    )
    expect(e.kind).toBe('INPUT_UNAVAILABLE')
    expect(e.message).toMatch(/connection reset/)
    await expectCacheEmpty()
  })

  it('two jobs wanting the same digest fetch it once', async () => {
    let calls = 0
    const slow: BlobSource = async ({ offset }) => {
      calls++
      return (async function* () {
        await new Promise((r) => setTimeout(r, 50))
        yield GOOD.subarray(offset)
      })()
    }
    const want: JobInput = { name: 'up', source: 'upload', sha256: sha256Hex(GOOD), size: GOOD.length, kind: 'file' }
    const [a, b] = await Promise.all([
      prepareInputs([want], { cache, blobs: slow }),
      prepareInputs([want], { cache, blobs: slow }),
    ])
    expect(calls).toBe(1)
    expect(a.mounts[0]!.hostPath).toBe(b.mounts[0]!.hostPath)
    a.release()
    expect(cache.isPinned(want.sha256!)).toBe(true)
    b.release()
    expect(cache.isPinned(want.sha256!)).toBe(false)
  })
})
