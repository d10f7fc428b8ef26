import { createHash, type Hash } from 'node:crypto'
import { StringDecoder } from 'node:string_decoder'
import { Writable } from 'node:stream'

export type LogStream = 'stdout' | 'stderr'

export interface CollectedLog {
  /** The kept part of the log: all of it, or its head and tail around a marker. */
  text: string
  truncated: boolean
  /** sha256 hex over every byte streamed, in arrival order, stdout and stderr interleaved. */
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

  constructor(
    private readonly maxBytes: number,
    private readonly onLog?: (stream: LogStream, text: string) => void,
    private readonly onCallbackError?: (err: unknown) => void,
  ) {
    this.headLimit = Math.floor(maxBytes / 2)
    this.tailLimit = maxBytes - this.headLimit
  }

  push(stream: LogStream, chunk: Buffer): void {
    this.hash.update(chunk)
    this.total += chunk.length
    this.keep(chunk)
    // Decoders per stream, so a UTF-8 character split across chunks is not mangled.
    const text = this.decoders[stream].write(chunk)
    if (text !== '' && this.onLog) {
      // A throwing listener must not break the run or the digest.
      try {
        this.onLog(stream, text)
      } catch (err) {
        this.onCallbackError?.(err)
      }
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
      if (rest !== '' && this.onLog) {
        try {
          this.onLog(stream, rest)
        } catch (err) {
          this.onCallbackError?.(err)
        }
      }
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
