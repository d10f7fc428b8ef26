import { rm } from 'node:fs/promises'
import { inputMountOf, type JobInput } from '@kiln/protocol'
import type { Logger } from '../log.ts'
import type { InputCache } from './cache.ts'
import { fetchInput, resolved, type BlobSource, type ResolvedInput } from './fetch.ts'
import { unpackArchiveFile } from './unpack.ts'

export interface PreparedMount {
  hostPath: string
  containerPath: string
  readOnly: true
}

export interface PreparedInputs {
  /** One per input, in the spec's order: what RunRequest.mounts takes. */
  mounts: PreparedMount[]
  /** Unpins every input (call once the container is gone); later calls do nothing. */
  release(): void
  /** Bytes of the inputs that were cached already. */
  cachedBytes: number
  /** Bytes downloaded for this job. */
  fetchedBytes: number
}

export interface PrepareOptions {
  cache: InputCache
  /** The marketplace's blobs, for `upload` and `job:` inputs (meshBlobSource). */
  blobs?: BlobSource
  /** Bytes fetched so far of the bytes to fetch (cached inputs are in neither); at most every `progressMs`. */
  onProgress?: (doneBytes: number, totalBytes: number) => void
  progressMs?: number
  /** The job's abort: stops every fetch (INPUT_UNAVAILABLE, context.cancelled). */
  signal?: AbortSignal
  /** How long, from now, all the inputs may take: INPUT_FETCH_TIMEOUT after it. */
  deadlineMs?: number
  /** Fetches at once. Default 3. */
  parallel?: number
  stallMs?: number
  /** Lets URL sources be http:// (tests only). */
  allowHttp?: boolean
  log?: Logger
}

/**
 * Makes every input of a lease ready to mount: an input already in the cache is pinned as it
 * is; the others are fetched (a few at once), verified, admitted and pinned, a folder's archive
 * unpacked on the way. Nothing partial ever enters the cache. On any failure every pin taken is
 * released, the other fetches are stopped, and the first error is thrown (INPUT_*, or
 * PAYLOAD_INVALID for a folder whose archive has an unsafe entry).
 */
export async function prepareInputs(inputs: readonly JobInput[], opts: PrepareOptions): Promise<PreparedInputs> {
  const { cache } = opts
  const wants = inputs.map(resolved)
  const releases: (() => void)[] = []
  const releaseAll = (): void => {
    for (const r of releases.splice(0)) r()
  }
  const paths = new Map<string, string>()
  let cachedBytes = 0
  const missing: ResolvedInput[] = []
  // Cached ones are pinned in this turn, before any await lets an admission evict them.
  for (const w of wants) {
    if (paths.has(w.sha256) || missing.some((m) => m.sha256 === w.sha256)) continue
    const entry = cache.get(w.sha256)
    if (entry && entry.kind === w.kind) {
      releases.push(cache.pin(w.sha256))
      paths.set(w.sha256, entry.path)
      cachedBytes += w.size
    } else missing.push(w)
  }

  const total = missing.reduce((n, w) => n + w.size, 0)
  let done = 0
  const progress = throttle(() => opts.onProgress?.(done, total), opts.progressMs ?? 250)
  const ac = new AbortController()
  const onAbort = (): void => ac.abort(opts.signal?.reason)
  opts.signal?.addEventListener('abort', onAbort)
  if (opts.signal?.aborted) onAbort()
  const deadlineAt = opts.deadlineMs === undefined ? undefined : Date.now() + opts.deadlineMs
  try {
    progress.now()
    const queue = [...missing]
    const worker = async (): Promise<void> => {
      for (let w = queue.shift(); w !== undefined; w = queue.shift()) {
        const want = w
        const fetchOne = async (): Promise<void> => {
          const archive = cache.tmpPath(`fetch-${want.sha256.slice(0, 12)}`)
          await fetchInput(want, opts.blobs ? { blobs: opts.blobs } : {}, {
            tmpPath: archive,
            signal: ac.signal,
            deadlineAt,
            ...(opts.stallMs !== undefined ? { stallMs: opts.stallMs } : {}),
            ...(opts.allowHttp ? { allowHttp: true } : {}),
            onBytes: (n) => {
              done += n
              progress.soon()
            },
          })
          let from = archive
          if (want.kind === 'dir') {
            from = cache.tmpPath(`tree-${want.sha256.slice(0, 12)}`)
            try {
              await unpackArchiveFile(archive, from, want.name)
            } catch (e) {
              await rm(from, { recursive: true, force: true })
              throw e
            } finally {
              await rm(archive, { force: true })
            }
          }
          // Pinned by admit in the same turn it becomes visible; held until this job ends.
          releases.push(await cache.admit(want.sha256, want.kind, from, want.size))
        }
        // Another job fetching the same digest right now: wait for it, then pin what it admitted
        // (or fetch it ourselves, when that one failed or its entry is gone already).
        let mine = false
        try {
          await cache.coalesce(want.sha256, async () => {
            mine = true
            await fetchOne()
          })
        } catch (e) {
          if (mine) throw e
        }
        if (!mine) {
          if (cache.has(want.sha256)) releases.push(cache.pin(want.sha256))
          else await fetchOne()
        }
        const entry = cache.get(want.sha256)
        if (entry) paths.set(want.sha256, entry.path)
        opts.log?.info({ input: want.name, sha256: want.sha256, bytes: want.size }, 'input fetched')
      }
    }
    const workers = Array.from({ length: Math.min(opts.parallel ?? 3, missing.length) }, worker)
    const results = await Promise.allSettled(workers)
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (failed) throw failed.reason
    progress.now()
  } catch (e) {
    ac.abort()
    releaseAll()
    throw e
  } finally {
    progress.cancel()
    opts.signal?.removeEventListener('abort', onAbort)
  }

  return {
    mounts: inputs.map((input, i) => ({
      hostPath: paths.get((wants[i] as ResolvedInput).sha256) as string,
      containerPath: inputMountOf(input),
      readOnly: true as const,
    })),
    release: releaseAll,
    cachedBytes,
    fetchedBytes: done,
  }
}

/** Calls `fn` at most once per `ms` for `soon()`, and at once for `now()`. */
function throttle(fn: () => void, ms: number) {
  let last = 0
  let timer: ReturnType<typeof setTimeout> | undefined
  const fire = (): void => {
    if (timer !== undefined) clearTimeout(timer)
    timer = undefined
    last = Date.now()
    fn()
  }
  return {
    now: fire,
    soon(): void {
      if (timer !== undefined) return
      const wait = last + ms - Date.now()
      if (wait <= 0) fire()
      else timer = setTimeout(fire, wait)
    },
    cancel(): void {
      if (timer !== undefined) clearTimeout(timer)
      timer = undefined
    },
  }
}
