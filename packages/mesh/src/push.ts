import type { Connection, PeerId, Stream } from '@libp2p/interface'
import { isKilnError, type Address, type Logger } from '@kiln/protocol'
import { FramedChannel } from './channel.ts'
import { peerIdToAddress } from './ids.ts'
import type { KilnLibp2p } from './libp2p.ts'
import { ADVERT_PUSH_PROTOCOL, ADVERT_TOPIC, MAX_ADVERT_BYTES } from './types.ts'

/** How long one push may take, either side; an advert is one small frame. */
const PUSH_TIMEOUT_MS = 5_000
/** Honest peers push once per connection and once per advert they publish; more is abuse. */
const MAX_PUSHES_PER_PEER = 8
const PUSH_WINDOW_MS = 10_000
/** Forget rate windows of peers not heard from in a while, so the map cannot grow without bound. */
const MAX_TRACKED_PUSHERS = 10_000

/**
 * Direct delivery of this node's own advert to peers that gossip cannot reach yet. Gossipsub
 * only delivers to peers whose subscription it has heard, and a new subscriber hears nothing
 * published before it joined; left alone, a provider's first advert reaches nobody and the
 * marketplace learns of it only at the next periodic one. So on every new peer and on every
 * publish to peers not yet known as subscribers, the sealed advert goes over a one-frame
 * stream (ADVERT_PUSH_PROTOCOL). The push starts as soon as the connection is open, not after
 * identify, which on a busy machine saves a round trip and a few hundred milliseconds; a peer
 * that does not speak the protocol refuses it once and is not asked again. The receiver runs
 * the advert through the same gate as gossip, so a pushed advert is as trusted as a gossiped one.
 */
export class AdvertPush {
  readonly #node: KilnLibp2p
  readonly #receive: (data: Uint8Array) => void
  readonly #tooLarge: () => void
  readonly #log: Logger
  /** Connected peers, by PeerId string. */
  readonly #peers = new Map<string, PeerId>()
  /** Connected peers that refused the protocol. */
  readonly #unsupported = new Set<string>()
  readonly #rate = new Map<string, { start: number; count: number }>()
  #latest: { bytes: Uint8Array; expiresAt: number } | undefined
  readonly #onOpen = (evt: CustomEvent<Connection>): void => {
    const conn = evt.detail
    const key = conn.remotePeer.toString()
    if (this.#peers.has(key)) return
    this.#peers.set(key, conn.remotePeer)
    this.#pushTo(conn.remotePeer, conn)
  }
  readonly #onGone = (evt: CustomEvent<PeerId>): void => {
    this.#peers.delete(evt.detail.toString())
    this.#unsupported.delete(evt.detail.toString())
  }

  constructor(node: KilnLibp2p, receive: (data: Uint8Array) => void, tooLarge: () => void, log: Logger) {
    this.#node = node
    this.#receive = receive
    this.#tooLarge = tooLarge
    this.#log = log
  }

  /** Before libp2p starts, so that no connection is opened before we listen for it. */
  async start(): Promise<void> {
    await this.#node.handle(ADVERT_PUSH_PROTOCOL, (stream, conn) => this.#onPush(stream, conn), {
      maxInboundStreams: 2,
      maxOutboundStreams: 2,
      force: true,
    })
    this.#node.addEventListener('connection:open', this.#onOpen)
    this.#node.addEventListener('peer:disconnect', this.#onGone)
  }

  stop(): void {
    this.#node.removeEventListener('connection:open', this.#onOpen)
    this.#node.removeEventListener('peer:disconnect', this.#onGone)
    this.#peers.clear()
    this.#unsupported.clear()
  }

  /** Records our newest sealed advert and pushes it to connected peers gossip would miss. */
  published(bytes: Uint8Array, expiresAt: number): void {
    this.#latest = { bytes, expiresAt }
    const subscribers = new Set(this.#node.services.pubsub.getSubscribers(ADVERT_TOPIC).map((p) => p.toString()))
    for (const [key, peer] of this.#peers) if (!subscribers.has(key) && !this.#unsupported.has(key)) this.#pushTo(peer)
  }

  #pushTo(peer: PeerId, conn?: Connection): void {
    const latest = this.#latest
    if (latest === undefined || latest.expiresAt <= Date.now()) return
    void (async () => {
      const signal = AbortSignal.timeout(PUSH_TIMEOUT_MS)
      const c = conn ?? this.#node.getConnections(peer).find((x) => x.status === 'open')
      if (c === undefined) return
      const ch = new FramedChannel(
        await c.newStream(ADVERT_PUSH_PROTOCOL, { signal }),
        peerIdToAddress(peer),
        MAX_ADVERT_BYTES,
      )
      await ch.send(latest.bytes)
      await ch.close()
    })().catch((err: Error) => {
      if (err.name === 'UnsupportedProtocolError') this.#unsupported.add(peer.toString())
      this.#log.info({ peer: peer.toString(), err: err.message }, 'advert push failed')
    })
  }

  async #onPush(stream: Stream, conn: Connection): Promise<void> {
    let remote: Address
    try {
      remote = peerIdToAddress(conn.remotePeer)
    } catch (err) {
      stream.abort(err as Error)
      return
    }
    if (!this.#allow(conn.remotePeer.toString())) {
      stream.abort(new Error('too many advert pushes'))
      return
    }
    const ch = new FramedChannel(stream, remote, MAX_ADVERT_BYTES)
    try {
      const frame = await ch.next(PUSH_TIMEOUT_MS)
      if (frame !== undefined) this.#receive(frame)
      await ch.close()
    } catch (err) {
      if (isKilnError(err, 'STREAM_FRAME_TOO_LARGE')) this.#tooLarge()
      ch.abort(err as Error)
    }
  }

  #allow(key: string, now = Date.now()): boolean {
    let w = this.#rate.get(key)
    if (w === undefined || now - w.start > PUSH_WINDOW_MS) {
      if (this.#rate.size >= MAX_TRACKED_PUSHERS) {
        for (const [k, v] of this.#rate) if (now - v.start > PUSH_WINDOW_MS) this.#rate.delete(k)
        // Still full: forget the oldest window rather than grow without bound.
        if (this.#rate.size >= MAX_TRACKED_PUSHERS) this.#rate.delete(this.#rate.keys().next().value as string)
      }
      w = { start: now, count: 0 }
      this.#rate.set(key, w)
    }
    return ++w.count <= MAX_PUSHES_PER_PEER
  }
}
