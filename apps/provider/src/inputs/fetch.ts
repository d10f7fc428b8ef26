import { createHash, type Hash } from 'node:crypto'
import { open, rm, type FileHandle } from 'node:fs/promises'
import { isKilnError, KilnError, type JobInput } from '@kiln/protocol'

/**
 * Bytes of an `upload` or `job:` input, from the marketplace: from `offset` to the end, so a
 * download cut short continues where it stopped. The mesh implementation is blob-client.ts.
 */
export type BlobSource = (
  req: { sha256: string; offset: number },
  signal: AbortSignal,
) => Promise<AsyncIterable<Uint8Array>>

export interface FetchSources {
  /** For `upload` and `job:` sources; without it such an input is INPUT_UNAVAILABLE. */
  blobs?: BlobSource
}

export interface FetchOptions {
  /** Where the bytes go while they arrive (a path under the cache's tmp/); removed on failure. */
  tmpPath: string
  signal?: AbortSignal
  /** No byte for this long is a stall: INPUT_UNAVAILABLE. Default 30 s. */
  stallMs?: number
  /** Epoch ms by which the input must be whole: INPUT_FETCH_TIMEOUT after it. */
  deadlineAt?: number
  /** How many times a transfer cut short after making progress is resumed from where it stopped. Default 3. */
  maxResumes?: number
  /**
   * Lets a URL source be plain http:// (tests, against a local server). Specs only carry
   * https://, and a redirect to anything but https:// is refused unless this is set.
   */
  allowHttp?: boolean
  /** Called with each chunk's length as it is written. */
  onBytes?: (n: number) => void
}

export interface Fetched {
  /** The tmp file, whole and verified. */
  path: string
  bytes: number
}

const MAX_REDIRECTS = 5

/** What fetching needs of an input. */
export type InputRef = Pick<JobInput, 'name' | 'source' | 'kind' | 'sha256' | 'size'>

/** An input as it reaches the provider: the marketplace filled in every digest and size. */
export type ResolvedInput = Pick<JobInput, 'name' | 'source' | 'kind'> & { sha256: string; size: number }

export function resolved(input: InputRef): ResolvedInput {
  if (input.sha256 === undefined || input.size === undefined)
    throw new KilnError(
      'PAYLOAD_INVALID',
      `input ${input.name} has no ${input.sha256 === undefined ? 'sha256' : 'size'}; the lease must name both for every input`,
      { input: input.name },
    )
  return { name: input.name, source: input.source, kind: input.kind, sha256: input.sha256, size: input.size }
}

/** Why a transfer attempt stopped without its whole bytes: a stall and a deadline are not resumed. */
class Stop extends Error {
  constructor(readonly why: 'stall' | 'deadline' | 'cancelled') {
    super(why)
  }
}

/**
 * Streams one input into `opts.tmpPath` while hashing it, never holding it whole in memory,
 * and returns once it is exactly `size` bytes hashing to `sha256`. Refuses: more bytes than
 * declared (INPUT_TOO_LARGE, at the first byte over), another digest (INPUT_DIGEST_MISMATCH),
 * a source that is refused, answers non-2xx or stalls (INPUT_UNAVAILABLE), and the deadline
 * (INPUT_FETCH_TIMEOUT). On any failure the tmp file is removed.
 */
export async function fetchInput(input: InputRef, sources: FetchSources, opts: FetchOptions): Promise<Fetched> {
  const want = resolved(input)
  const file = await open(opts.tmpPath, 'w', 0o600)
  const state: Progress = { file, hash: createHash('sha256'), written: 0 }
  try {
    for (let resumes = 0; ; resumes++) {
      const before = state.written
      let error: unknown
      try {
        await transfer(want, sources, opts, state)
        if (state.written === want.size) break
      } catch (e) {
        error = e
      }
      // Resumed: a transport that broke (or ended short) after making progress. Not resumed:
      // a stall or the deadline (time is what ran out), a refusal, or a source that gives nothing.
      const resumable = !(error instanceof Stop) && !isKilnError(error) && state.written > before
      if (!resumable || resumes >= (opts.maxResumes ?? 3)) throw failure(want, error, state.written)
    }
    await file.close()
    const digest = state.hash.digest('hex')
    if (digest !== want.sha256)
      throw new KilnError(
        'INPUT_DIGEST_MISMATCH',
        `input ${want.name}: its ${want.size} bytes hash to ${digest}, not the sha256 the spec names (${want.sha256})`,
        { input: want.name, expected: want.sha256, actual: digest },
      )
    return { path: opts.tmpPath, bytes: state.written }
  } catch (e) {
    await file.close().catch(() => {})
    await rm(opts.tmpPath, { force: true })
    throw e
  }
}

/** The error a failed fetch ends with: input errors as they are, everything else INPUT_UNAVAILABLE. */
function failure(want: ResolvedInput, error: unknown, written: number): KilnError {
  const ctx = { input: want.name, source: want.source, bytes: written, size: want.size }
  if (error instanceof Stop) {
    if (error.why === 'deadline')
      return new KilnError(
        'INPUT_FETCH_TIMEOUT',
        `input ${want.name}: only ${written} of ${want.size} bytes arrived before the inputs' deadline`,
        ctx,
      )
    if (error.why === 'stall')
      return new KilnError(
        'INPUT_UNAVAILABLE',
        `input ${want.name}: ${describe(want.source)} stalled (no bytes for too long) after ${written} of ${want.size} bytes`,
        { ...ctx, stalled: true },
      )
    return new KilnError('INPUT_UNAVAILABLE', `input ${want.name}: the fetch was cancelled`, {
      ...ctx,
      cancelled: true,
    })
  }
  if (isKilnError(error)) {
    if (error.kind.startsWith('INPUT_')) return error
    return new KilnError('INPUT_UNAVAILABLE', `input ${want.name}: ${error.message}`, { ...ctx, cause: error.code })
  }
  if (error === undefined)
    return new KilnError(
      'INPUT_UNAVAILABLE',
      `input ${want.name}: ${describe(want.source)} ended after ${written} of the ${want.size} bytes declared`,
      ctx,
    )
  const cause = error as Error & { cause?: { code?: string; message?: string } }
  const detail = cause.cause?.code ?? cause.cause?.message ?? cause.message
  return new KilnError(
    'INPUT_UNAVAILABLE',
    `input ${want.name}: cannot read ${describe(want.source)}: ${detail}`,
    ctx,
    {
      cause: error,
    },
  )
}

const describe = (source: string): string =>
  source.startsWith('https://') || source.startsWith('http://') ? source : `the marketplace (${source})`

interface Progress {
  file: FileHandle
  hash: Hash
  /** Bytes in the file, all of them hashed. */
  written: number
}

/**
 * One attempt: opens the source from `state.written` and appends what it sends, advancing
 * `state` chunk by chunk (so a failure leaves it at the last byte kept). Rejects with the
 * transport's error, a Stop, or a KilnError.
 */
async function transfer(
  want: ResolvedInput,
  sources: FetchSources,
  opts: FetchOptions,
  state: Progress,
): Promise<void> {
  const ac = new AbortController()
  let stop: Stop | undefined
  const halt = (why: Stop['why']): void => {
    stop ??= new Stop(why)
    ac.abort(stop)
  }
  const stallMs = opts.stallMs ?? 30_000
  let stallTimer = setTimeout(() => halt('stall'), stallMs)
  const deadlineTimer =
    opts.deadlineAt === undefined
      ? undefined
      : setTimeout(() => halt('deadline'), Math.max(0, opts.deadlineAt - Date.now()))
  const onCancel = (): void => halt('cancelled')
  if (opts.signal?.aborted) halt('cancelled')
  opts.signal?.addEventListener('abort', onCancel)
  try {
    const opened = await openSource(want, sources, opts, state.written, ac.signal)
    if (opened.fromStart && state.written > 0) {
      // The source ignored the range and sends it all again: start the file and the hash over.
      await state.file.truncate(0)
      state.hash = createHash('sha256')
      state.written = 0
    }
    for await (const chunk of opened.body) {
      if (stop) throw stop
      clearTimeout(stallTimer)
      stallTimer = setTimeout(() => halt('stall'), stallMs)
      if (state.written + chunk.byteLength > want.size)
        throw new KilnError(
          'INPUT_TOO_LARGE',
          `input ${want.name}: ${describe(want.source)} sent more than the ${want.size} bytes the spec declares`,
          { input: want.name, size: want.size },
        )
      await state.file.write(chunk, 0, chunk.byteLength, state.written)
      state.hash.update(chunk)
      state.written += chunk.byteLength
      opts.onBytes?.(chunk.byteLength)
    }
    if (stop) throw stop
  } catch (e) {
    ac.abort()
    throw stop ?? e
  } finally {
    clearTimeout(stallTimer)
    if (deadlineTimer !== undefined) clearTimeout(deadlineTimer)
    opts.signal?.removeEventListener('abort', onCancel)
  }
}

interface Opened {
  body: AsyncIterable<Uint8Array>
  /** The source sends everything from byte 0, not the range asked for. */
  fromStart: boolean
}

async function openSource(
  want: ResolvedInput,
  sources: FetchSources,
  opts: FetchOptions,
  offset: number,
  signal: AbortSignal,
): Promise<Opened> {
  if (want.source === 'upload' || want.source.startsWith('job:')) {
    if (!sources.blobs)
      throw new KilnError(
        'INPUT_UNAVAILABLE',
        `input ${want.name}: no connection to the marketplace to fetch ${want.source} from`,
        {
          input: want.name,
        },
      )
    return { body: await sources.blobs({ sha256: want.sha256, offset }, signal), fromStart: false }
  }
  let url = checkUrl(want, want.source, opts)
  for (let hop = 0; ; hop++) {
    const res = await fetch(url, {
      redirect: 'manual',
      signal,
      headers: offset > 0 ? { range: `bytes=${offset}-` } : {},
    })
    if (res.status >= 300 && res.status < 400 && res.headers.has('location')) {
      await res.body?.cancel()
      if (hop >= MAX_REDIRECTS)
        throw new KilnError(
          'INPUT_UNAVAILABLE',
          `input ${want.name}: more than ${MAX_REDIRECTS} redirects from ${want.source}`,
          {
            input: want.name,
          },
        )
      url = checkUrl(want, new URL(res.headers.get('location') as string, url).toString(), opts)
      continue
    }
    if (res.status < 200 || res.status > 299 || !res.body) {
      await res.body?.cancel()
      throw new KilnError(
        'INPUT_UNAVAILABLE',
        `input ${want.name}: ${url} answered HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}, not 2xx`,
        { input: want.name, status: res.status },
      )
    }
    const fromStart = res.status !== 206
    // A length over the declared size is refused before any byte is read.
    const announced = Number(res.headers.get('content-length') ?? Number.NaN) + (fromStart ? 0 : offset)
    if (announced > want.size) throw tooLargeHeader(want, announced)
    // Node's web ReadableStream is async-iterable; the DOM typings this project builds with do not say so.
    return { body: res.body as unknown as AsyncIterable<Uint8Array>, fromStart }
  }
}

function tooLargeHeader(want: ResolvedInput, bytes: number): KilnError {
  return new KilnError(
    'INPUT_TOO_LARGE',
    `input ${want.name}: ${want.source} announces ${bytes} bytes, more than the ${want.size} the spec declares`,
    { input: want.name, size: want.size, announced: bytes },
  )
}

function checkUrl(want: ResolvedInput, raw: string, opts: FetchOptions): string {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw new KilnError('INPUT_UNAVAILABLE', `input ${want.name}: ${raw} is not a URL`, { input: want.name })
  }
  if (url.protocol !== 'https:' && !(opts.allowHttp && url.protocol === 'http:'))
    throw new KilnError(
      'INPUT_UNAVAILABLE',
      `input ${want.name}: refusing ${url.protocol}//${url.host}: inputs are fetched over https:// only (redirects included)`,
      { input: want.name },
    )
  return url.toString()
}
