import { createHash, type Hash } from 'node:crypto'
import { StringDecoder } from 'node:string_decoder'
import { Writable } from 'node:stream'
import { SecretMasker } from '@kiln/protocol'

export type LogStream = 'stdout' | 'stderr'

export interface CollectedLog {
  /** The kept part of the log: all of it, or its head and tail around a marker. */
  text: string
  truncated: boolean
  /**
   * sha256 hex over every byte streamed, in arrival order, stdout and stderr interleaved. With a
   * mask, over the masked text as handed to onLog: what the client gets is what the digest covers.
   */
  digest: string
  /** Every byte streamed, kept or not. */
  bytes: number
}

/**
 * Collects a container's output: hands each piece to `onLog` as it arrives, hashes all of
 * it, and keeps at most `maxBytes` of it. It keeps the head and the tail, since the start
 * says what ran and the end says why it stopped.
 */
export class LogCollector {
  private readonly hash: Hash = createHash('sha256')
  private readonly decoders: Record<LogStream, StringDecoder> = {
    stdout: new StringDecoder('utf8'),
    stderr: new StringDecoder('utf8'),
  }
  private readonly headLimit: number
  private readonly tailLimit: number
  private head: Buffer[] = []
  private headBytes = 0
  private tail: Buffer[] = []
  private tailBytes = 0
  private total = 0
  /** Per stream, so a value split across one stream's chunks is still seen; none without values. */
  private readonly maskers: Record<LogStream, SecretMasker> | undefined

  constructor(
    private readonly maxBytes: number,
    private readonly onLog?: (stream: LogStream, text: string) => void,
    private readonly onCallbackError?: (err: unknown) => void,
    mask: readonly string[] = [],
  ) {
    this.headLimit = Math.floor(maxBytes / 2)
    this.tailLimit = maxBytes - this.headLimit
    if (mask.length > 0) this.maskers = { stdout: new SecretMasker(mask), stderr: new SecretMasker(mask) }
  }

  push(stream: LogStream, chunk: Buffer): void {
    // Decoders per stream, so a UTF-8 character split across chunks is not mangled.
    const text = this.decoders[stream].write(chunk)
    if (this.maskers) this.take(stream, this.maskers[stream].push(text))
    else this.take(stream, text, chunk)
  }

  /** Hashes, counts and keeps `bytes` (the text's own, unless the raw chunk is given) and tells onLog. */
  private take(stream: LogStream, text: string, bytes: Buffer = Buffer.from(text)): void {
    this.hash.update(bytes)
    this.total += bytes.length
    this.keep(bytes)
    this.tell(stream, text)
  }

  private tell(stream: LogStream, text: string): void {
    if (text === '' || !this.onLog) return
    // A throwing listener must not break the run or the digest.
    try {
      this.onLog(stream, text)
    } catch (err) {
      this.onCallbackError?.(err)
    }
  }

  private keep(chunk: Buffer): void {
    let rest = chunk
    if (this.headBytes < this.headLimit) {
      const take = Math.min(this.headLimit - this.headBytes, rest.length)
      this.head.push(rest.subarray(0, take))
      this.headBytes += take
      rest = rest.subarray(take)
    }
    if (rest.length === 0 || this.tailLimit === 0) return
    // Copy: the tail outlives this chunk, and a subarray would pin the whole chunk.
    this.tail.push(Buffer.from(rest.subarray(Math.max(0, rest.length - this.tailLimit))))
    this.tailBytes += Math.min(rest.length, this.tailLimit)
    while (this.tailBytes > this.tailLimit) {
      const first = this.tail[0]
      if (first === undefined) break
      const excess = this.tailBytes - this.tailLimit
      if (first.length <= excess) {
        this.tail.shift()
        this.tailBytes -= first.length
      } else {
        this.tail[0] = first.subarray(excess)
        this.tailBytes -= excess
      }
    }
  }

  /** A Writable for docker.modem.demuxStream. */
  writable(stream: LogStream): Writable {
    return new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        this.push(stream, chunk)
        cb()
      },
    })
  }

  finish(): CollectedLog {
    for (const stream of ['stdout', 'stderr'] as const) {
      const rest = this.decoders[stream].end()
      // Unmasked, the raw bytes are hashed already; masked, what the maskers held back is given out now.
      if (this.maskers) this.take(stream, this.maskers[stream].push(rest) + this.maskers[stream].flush())
      else this.tell(stream, rest)
    }
    const kept = this.headBytes + this.tailBytes
    const omitted = this.total - kept
    const head = Buffer.concat(this.head).toString('utf8')
    const tail = Buffer.concat(this.tail).toString('utf8')
    const text =
      omitted > 0
        ? `${head}\n[kiln: ${omitted} bytes of log omitted; ${this.total} bytes in all]\n${tail}`
        : head + tail
    return { text, truncated: omitted > 0, digest: this.hash.digest('hex'), bytes: this.total }
  }
}
