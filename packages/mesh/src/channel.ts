import * as lp from 'it-length-prefixed'
import type { Stream } from '@libp2p/interface'
import { KilnError, type Address } from '@kiln/protocol'

/** A framed, bidirectional, size-bounded stream to one authenticated peer. */
export interface Channel {
  /** The remote key as authenticated by the Noise handshake. */
  readonly remote: Address
  readonly protocol: string
  /** Waits while the stream is under backpressure; throws STREAM_FRAME_TOO_LARGE over the limit. */
  send(frame: Uint8Array): Promise<void>
  sendJson(value: unknown): Promise<void>
  /**
   * The next frame; undefined once the remote has closed its end cleanly. Rejects with
   * STREAM_FRAME_TOO_LARGE on an oversize frame (the stream is then reset), with
   * PEER_UNREACHABLE (context.timeout) when no frame came in time (the channel stays usable),
   * or with the stream's error when it was reset.
   */
  next(timeoutMs?: number): Promise<Uint8Array | undefined>
  nextJson<T = unknown>(timeoutMs?: number): Promise<T | undefined>
  /** Closes our writing end; frames the remote still sends can be read. */
  close(): Promise<void>
  abort(err?: Error): void
}

/** Length-prefix varints are at most this many bytes (as in it-length-prefixed). */
const MAX_VARINT_BYTES = 8

/**
 * Frames are unsigned-varint length-prefixed, the same wire format as it-length-prefixed, so
 * any libp2p peer can speak it. Reading is our own small decoder rather than lp.decode over
 * the stream's async iterator, because that iterator buffers without limit; here the stream
 * is paused once a whole frame is waiting, and Yamux's window then stops the sender.
 */
export class FramedChannel implements Channel {
  readonly remote: Address
  readonly protocol: string
  readonly #stream: Stream
  readonly #maxFrame: number
  readonly #highWater: number
  #chunks: Uint8Array[] = []
  #buffered = 0
  #paused = false
  #ended = false
  #error: Error | undefined
  #fatal: KilnError | undefined
  readonly #wakers = new Set<() => void>()

  constructor(stream: Stream, remote: Address, maxFrameBytes: number) {
    this.#stream = stream
    this.remote = remote
    this.protocol = stream.protocol
    this.#maxFrame = maxFrameBytes
    this.#highWater = maxFrameBytes + MAX_VARINT_BYTES
    stream.addEventListener('message', (evt) => {
      const data = evt.data instanceof Uint8Array ? evt.data : evt.data.subarray()
      this.#chunks.push(data)
      this.#buffered += data.byteLength
      if (!this.#paused && this.#buffered >= this.#highWater) this.#pause()
      this.#wake()
    })
    stream.addEventListener('end', () => {
      this.#ended = true
      this.#wake()
    })
    stream.addEventListener('close', (evt) => {
      if (evt.error !== undefined) this.#error ??= evt.error
      // A clean close with nothing left in the stream's buffer is also the end of input.
      else if (stream.readBufferLength === 0) this.#ended = true
      this.#wake()
    })
  }

  async send(frame: Uint8Array): Promise<void> {
    if (frame.byteLength > this.#maxFrame) {
      throw new KilnError(
        'STREAM_FRAME_TOO_LARGE',
        `frame is ${frame.byteLength} bytes; the limit is ${this.#maxFrame}`,
        { size: frame.byteLength, maxFrameBytes: this.#maxFrame },
      )
    }
    try {
      this.#stream.send(lp.encode.single(frame))
    } catch (cause) {
      throw this.#unwritable(cause)
    }
    await this.#writable()
  }

  /**
   * Resolves once at most one frame's worth is queued locally. Not stream.onDrain(): in
   * @libp2p/utils 7.4.1 its promise is never reset after the first drain, so from then on it
   * resolves at once and a fast sender queues without limit. The 'drain' event fires on every
   * window update, which may free less than a frame, hence the loop.
   */
  async #writable(): Promise<void> {
    const s = this.#stream
    while (s.writableNeedsDrain || s.writeBufferLength > this.#maxFrame) {
      if (s.status !== 'open') throw this.#unwritable()
      await new Promise<void>((resolve) => {
        const done = (): void => {
          for (const ev of ['drain', 'idle', 'close'] as const) s.removeEventListener(ev, done)
          resolve()
        }
        for (const ev of ['drain', 'idle', 'close'] as const) s.addEventListener(ev, done)
      })
    }
  }

  #unwritable(cause?: unknown): KilnError {
    return new KilnError(
      'PEER_UNREACHABLE',
      `cannot send to ${this.remote} on ${this.protocol}: the stream is ${this.#stream.status}`,
      { protocol: this.protocol },
      { cause: cause ?? this.#error },
    )
  }

  async sendJson(value: unknown): Promise<void> {
    await this.send(new TextEncoder().encode(JSON.stringify(value)))
  }

  async next(timeoutMs?: number): Promise<Uint8Array | undefined> {
    const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs
    for (;;) {
      const frame = this.#take()
      if (frame !== undefined) return frame
      if (this.#error !== undefined) throw this.#error
      if (this.#ended) {
        if (this.#buffered > 0)
          throw new KilnError('PAYLOAD_INVALID', `stream ended inside a frame (${this.#buffered} bytes left)`, {
            truncated: true,
            protocol: this.protocol,
          })
        return undefined
      }
      await this.#waitFor(deadline, timeoutMs)
    }
  }

  async nextJson<T = unknown>(timeoutMs?: number): Promise<T | undefined> {
    const frame = await this.next(timeoutMs)
    if (frame === undefined) return undefined
    try {
      return JSON.parse(new TextDecoder().decode(frame)) as T
    } catch (cause) {
      throw new KilnError('PAYLOAD_INVALID', 'frame is not JSON', { protocol: this.protocol }, { cause })
    }
  }

  async close(): Promise<void> {
    try {
      await this.#stream.close()
    } catch (err) {
      this.#stream.abort(err instanceof Error ? err : new Error(String(err)))
    }
  }

  abort(err?: Error): void {
    this.#stream.abort(err ?? new Error('channel aborted'))
  }

  /** One whole frame off the front of the buffer, or undefined if none is complete yet. */
  #take(): Uint8Array | undefined {
    if (this.#fatal !== undefined) throw this.#fatal
    const head = this.#peek(Math.min(this.#buffered, MAX_VARINT_BYTES))
    let length = 0
    let headerBytes = 0
    for (let i = 0; headerBytes === 0; i++) {
      if (i >= MAX_VARINT_BYTES) return this.#oversize(Number.POSITIVE_INFINITY)
      if (i >= head.length) return undefined
      const b = head[i] as number
      length += (b & 0x7f) * 2 ** (7 * i)
      if ((b & 0x80) === 0) headerBytes = i + 1
    }
    if (length > this.#maxFrame) return this.#oversize(length)
    if (this.#buffered < headerBytes + length) return undefined
    this.#consume(headerBytes)
    const frame = this.#consume(length)
    if (this.#paused && this.#buffered < this.#highWater) this.#resume()
    return frame
  }

  /** A peer that declares an oversize frame is broken or hostile: reset rather than skip. */
  #oversize(length: number): never {
    this.#fatal = new KilnError(
      'STREAM_FRAME_TOO_LARGE',
      `remote sent a ${length}-byte frame; the limit is ${this.#maxFrame}`,
      { size: length, maxFrameBytes: this.#maxFrame },
    )
    this.#chunks = []
    this.#buffered = 0
    this.#stream.abort(this.#fatal)
    throw this.#fatal
  }

  #peek(n: number): Uint8Array {
    const first = this.#chunks[0]
    if (first !== undefined && first.byteLength >= n) return first.subarray(0, n)
    const out = new Uint8Array(n)
    let off = 0
    for (const c of this.#chunks) {
      if (off >= n) break
      const part = c.subarray(0, n - off)
      out.set(part, off)
      off += part.byteLength
    }
    return out
  }

  #consume(n: number): Uint8Array {
    const first = this.#chunks[0]
    let out: Uint8Array
    if (first !== undefined && first.byteLength >= n) {
      out = first.subarray(0, n)
      if (first.byteLength === n) this.#chunks.shift()
      else this.#chunks[0] = first.subarray(n)
    } else {
      out = new Uint8Array(n)
      let off = 0
      while (off < n) {
        const c = this.#chunks[0] as Uint8Array
        const part = c.subarray(0, n - off)
        out.set(part, off)
        off += part.byteLength
        if (part.byteLength === c.byteLength) this.#chunks.shift()
        else this.#chunks[0] = c.subarray(part.byteLength)
      }
    }
    this.#buffered -= n
    return out
  }

  #pause(): void {
    try {
      this.#stream.pause()
      this.#paused = true
    } catch {
      // Already closing for reading: nothing more will arrive anyway.
    }
  }

  #resume(): void {
    this.#paused = false
    try {
      this.#stream.resume()
    } catch {
      // Closed meanwhile; its 'close' event has told us.
    }
  }

  #wake(): void {
    for (const w of this.#wakers) w()
    this.#wakers.clear()
  }

  #waitFor(deadline: number | undefined, timeoutMs: number | undefined): Promise<void> {
    return new Promise((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined
      const waker = (): void => {
        if (timer !== undefined) clearTimeout(timer)
        resolve()
      }
      this.#wakers.add(waker)
      if (deadline !== undefined) {
        timer = setTimeout(
          () => {
            this.#wakers.delete(waker)
            reject(
              new KilnError(
                'PEER_UNREACHABLE',
                `no frame from ${this.remote} on ${this.protocol} within ${timeoutMs} ms`,
                { timeout: true, timeoutMs, protocol: this.protocol },
              ),
            )
          },
          Math.max(0, deadline - Date.now()),
        )
      }
    })
  }
}
