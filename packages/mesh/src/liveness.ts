import type { Connection, Stream } from '@libp2p/interface'
import type { KilnLibp2p } from './libp2p.ts'
import type { Logger } from '@kiln/protocol'
import { LIVENESS_PROTOCOL } from './types.ts'

export interface LivenessParams {
  intervalMs: number
  timeoutMs: number
}

/** How often our own event loop is sampled for stalls (and silences are checked). */
const TICK_MS = 100
/**
 * A peer whose beats come late or irregularly gets a longer timeout: this many of its mean
 * gaps, or its mean gap plus this many deviations (as accrual failure detectors do), up to
 * 4x the base. An overloaded peer's beats turn irregular before it stalls for seconds.
 */
const GAP_FACTOR = 3
const DEV_FACTOR = 6
const MAX_TIMEOUT_FACTOR = 4
/** Weight of the newest gap in the running mean and variance. */
const ALPHA = 0.2
/** Beat streams a peer may hold open on one connection; an honest peer holds one. */
const MAX_BEAT_STREAMS = 2
const BEAT = new Uint8Array([1])

interface ConnState {
  conn: Connection
  /** Our beat stream to the peer, once negotiated. */
  out?: Stream
  opening: boolean
  lastBeat: number
  /** The peer does not speak LIVENESS_PROTOCOL (not a Kiln node): it is not judged. */
  unsupported: boolean
  /** The last sign of life (a beat, or the peer accepting our beat stream), on both clocks. */
  heard?: { at: number; stalled: number }
  /** Running mean and variance of the time between the peer's beats, our own stalls excluded. */
  gap?: { mean: number; variance: number }
}

/**
 * Drops connections to peers that went silent: a hung process (SIGSTOP, a deadlock, a machine
 * that lost power behind a NAT) sends no FIN or RST, so only silence gives it away.
 *
 * Each side of a connection opens one long-lived stream (LIVENESS_PROTOCOL) and sends a 1-byte
 * beat on it every interval; a connection whose peer sent nothing for the timeout is closed.
 * Why not libp2p's connection monitor: it opens a new /ipfs/ping stream per ping and waits for
 * the echo, which at one ping a second costs several times more CPU (measured: 24 nodes in one
 * process, ~27% of a core against ~7% here), and it judges by wall-clock time, so when *our*
 * event loop stalls (two cores, dozens of processes) its timer fires before the I/O that
 * carries the answer is read and it cuts live peers off. Here the silence excludes our own
 * stalls, and a peer whose beats arrive late or irregularly (its own loop is slow) gets a
 * longer timeout.
 */
export class LivenessMonitor {
  readonly #node: KilnLibp2p
  readonly #p: LivenessParams
  readonly #log: Logger
  /** By connection id: a peer may hold two connections, and one path can hang alone. */
  readonly #conns = new Map<string, ConnState>()
  #stalled = 0
  #lastTick = 0
  #timer: ReturnType<typeof setInterval> | undefined

  constructor(node: KilnLibp2p, params: LivenessParams, log: Logger) {
    this.#node = node
    this.#p = params
    this.#log = log
  }

  /** Before libp2p starts, so that the first identify already lists the protocol. */
  async register(): Promise<void> {
    await this.#node.handle(
      LIVENESS_PROTOCOL,
      (stream, conn) => {
        stream.addEventListener('message', () => {
          const s = this.#state(conn)
          const at = performance.now()
          if (s.heard !== undefined) {
            const gap = at - s.heard.at - (this.#stalled - s.heard.stalled)
            if (s.gap === undefined) s.gap = { mean: gap, variance: 0 }
            else {
              const d = gap - s.gap.mean
              s.gap = { mean: s.gap.mean + ALPHA * d, variance: (1 - ALPHA) * (s.gap.variance + ALPHA * d * d) }
            }
          }
          s.heard = { at, stalled: this.#stalled }
        })
        stream.addEventListener(
          'remoteCloseWrite',
          () => void stream.close().catch(() => stream.abort(new Error('close failed'))),
        )
      },
      { maxInboundStreams: MAX_BEAT_STREAMS, maxOutboundStreams: MAX_BEAT_STREAMS, force: true },
    )
  }

  start(): void {
    this.#lastTick = performance.now()
    this.#timer = setInterval(() => this.#tick(), TICK_MS)
    this.#timer.unref()
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer)
    this.#timer = undefined
    for (const s of this.#conns.values()) s.out?.abort(new Error('stopping'))
    this.#conns.clear()
  }

  #state(conn: Connection): ConnState {
    let s = this.#conns.get(conn.id)
    if (s === undefined) this.#conns.set(conn.id, (s = { conn, opening: false, lastBeat: 0, unsupported: false }))
    return s
  }

  #tick(): void {
    const now = performance.now()
    // Time beyond the period that this timer fired late is time our own loop did not run.
    this.#stalled += Math.max(0, now - this.#lastTick - TICK_MS)
    this.#lastTick = now
    const open = new Set<string>()
    for (const conn of this.#node.getConnections()) {
      if (conn.status !== 'open') continue
      open.add(conn.id)
      const s = this.#state(conn)
      if (s.unsupported) continue
      if (s.out === undefined && !s.opening) this.#open(s, now)
      if (s.out !== undefined && now - s.lastBeat >= this.#p.intervalMs) this.#beat(s, now)
      if (s.heard === undefined) continue
      const silent = now - s.heard.at - (this.#stalled - s.heard.stalled)
      if (silent > this.#timeoutFor(s)) this.#dead(s, silent)
    }
    for (const [id, s] of this.#conns) {
      if (open.has(id)) continue
      this.#conns.delete(id)
      s.out?.abort(new Error('connection closed'))
    }
  }

  #timeoutFor(s: ConnState): number {
    const g = s.gap ?? { mean: 0, variance: 0 }
    const adaptive = Math.max(GAP_FACTOR * g.mean, g.mean + DEV_FACTOR * Math.sqrt(g.variance))
    return Math.min(this.#p.timeoutMs * MAX_TIMEOUT_FACTOR, Math.max(this.#p.timeoutMs, adaptive))
  }

  #open(s: ConnState, now: number): void {
    s.opening = true
    // Silence counts from now: a peer that hung before it finished negotiating is silent too.
    s.heard ??= { at: now, stalled: this.#stalled }
    s.conn
      .newStream(LIVENESS_PROTOCOL, { signal: AbortSignal.timeout(this.#p.timeoutMs * MAX_TIMEOUT_FACTOR) })
      .then(
        (stream) => {
          if (!this.#conns.has(s.conn.id) || s.conn.status !== 'open') return stream.abort(new Error('connection gone'))
          s.out = stream
          s.heard = { at: performance.now(), stalled: this.#stalled }
          stream.addEventListener('close', () => {
            if (s.out === stream) s.out = undefined
          })
          this.#beat(s, performance.now())
        },
        (err: Error) => {
          if (err.name === 'UnsupportedProtocolError') {
            s.unsupported = true
            s.heard = undefined
          }
          this.#log.info({ peer: s.conn.remotePeer.toString(), err: err.message }, 'liveness stream failed')
        },
      )
      .finally(() => {
        s.opening = false
      })
  }

  #beat(s: ConnState, now: number): void {
    s.lastBeat = now
    const out = s.out
    // A full send buffer means the peer reads nothing; its own silence will decide.
    if (out === undefined || out.status !== 'open' || out.writableNeedsDrain) return
    out.send(BEAT)
  }

  #dead(s: ConnState, silent: number): void {
    this.#conns.delete(s.conn.id)
    s.out?.abort(new Error('peer went silent'))
    this.#log.info(
      { peer: s.conn.remotePeer.toString(), addr: s.conn.remoteAddr.toString(), silentMs: Math.round(silent) },
      'peer went silent; closing the connection',
    )
    s.conn.abort(new Error(`peer silent for ${Math.round(silent)} ms`))
  }
}
