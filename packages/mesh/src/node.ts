import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { PeerId } from '@libp2p/interface'
import {
  CapacityAdvert,
  KilnError,
  Kind,
  parseOrThrow,
  seal,
  silentLogger,
  type Address,
  type Logger,
} from '@kiln/protocol'
import { AdvertGate, DROP_REASONS, type AdvertEvent, type DropReason } from './adverts.ts'
import { FramedChannel, type Channel } from './channel.ts'
import { namedPeer, parseAddrs } from './addrs.ts'
import { addressToPeerId, advertPeerAddress, libp2pPrivateKey, peerIdToAddress } from './ids.ts'
import { PeerKeeper } from './keeper.ts'
import { buildLibp2p, type KilnLibp2p } from './libp2p.ts'
import { LivenessMonitor } from './liveness.ts'
import { AdvertPush } from './push.ts'
import {
  ADVERT_TOPIC,
  DEFAULT_ADVERT_TTL_MS,
  DEFAULT_MAX_FRAME_BYTES,
  MAX_ADVERT_BYTES,
  type MeshInit,
  type MeshNode,
  type MeshStats,
  type OpenOptions,
} from './types.ts'

/** A hung peer is dropped ~3 s after its last beat; see LivenessInit. */
const DEFAULT_BEAT_INTERVAL_MS = 1_000
const DEFAULT_SILENCE_TIMEOUT_MS = 3_000

export function createMeshNode(init: MeshInit): MeshNode {
  return new KilnMeshNode(init)
}

class KilnMeshNode implements MeshNode {
  readonly peerId: string
  readonly address: Address
  readonly stats: MeshStats
  readonly #init: MeshInit
  readonly #log: Logger
  readonly #maxFrame: number
  readonly #ttl: number
  readonly #self: PeerId
  readonly #bootstrap: string[]
  readonly #gate = new AdvertGate(MAX_ADVERT_BYTES)
  readonly #advertCbs = new Set<(ev: AdvertEvent) => void>()
  readonly #disconnectCbs = new Set<(a: Address) => void>()
  readonly #handlers = new Map<string, (ch: Channel) => Promise<void>>()
  #node: KilnLibp2p | undefined
  #push: AdvertPush | undefined
  #liveness: LivenessMonitor | undefined
  #keeper: PeerKeeper | undefined
  #running = false

  constructor(init: MeshInit) {
    this.#init = init
    this.#log = init.logger ?? silentLogger
    this.#maxFrame = init.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES
    this.#ttl = init.advertTtlMs ?? DEFAULT_ADVERT_TTL_MS
    this.address = init.identity.address
    this.#self = addressToPeerId(this.address)
    this.peerId = this.#self.toString()
    for (const a of init.bootstrap ?? []) {
      // Checked here because @libp2p/bootstrap would only log a bad entry and carry on alone.
      if (namedPeer(a) === undefined)
        throw new KilnError('CONFIG_INVALID', `bootstrap address ${a} is not a multiaddr ending in /p2p/<peerId>`, {
          address: a,
        })
    }
    // A bootstrap node is often handed the same list as everyone else, itself included.
    this.#bootstrap = (init.bootstrap ?? []).filter((a) => namedPeer(a) !== this.peerId)
    const dropped = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>
    this.stats = { advertsAccepted: 0, advertsDropped: dropped }
  }

  async start(): Promise<void> {
    if (this.#node !== undefined) return
    const node = await buildLibp2p({
      privateKey: libp2pPrivateKey(this.#init.identity),
      listen: this.#init.listen ?? ['/ip4/127.0.0.1/tcp/0'],
      bootstrap: this.#bootstrap,
    })
    this.#node = node
    const push = new AdvertPush(
      node,
      (data) => this.#validate(data),
      () => {
        this.stats.advertsDropped.too_large += 1
      },
      this.#log,
    )
    this.#push = push
    node.services.pubsub.topicValidators.set(ADVERT_TOPIC, (_from, msg) => this.#validate(msg.data))
    node.addEventListener('peer:disconnect', (evt) => this.#peerGone(evt.detail))
    const beatMs = this.#init.liveness?.intervalMs ?? DEFAULT_BEAT_INTERVAL_MS
    const liveness = new LivenessMonitor(
      node,
      {
        intervalMs: beatMs,
        // At least two beats must go missing before a peer counts as hung.
        timeoutMs: Math.max(2 * beatMs, this.#init.liveness?.timeoutMs ?? DEFAULT_SILENCE_TIMEOUT_MS),
      },
      this.#log,
    )
    try {
      for (const [protocol, handler] of this.#handlers) await this.#register(protocol, handler)
      await push.start()
      await liveness.register()
      await node.start()
      node.services.pubsub.subscribe(ADVERT_TOPIC)
    } catch (err) {
      // E.g. the listen port is taken: leave the node startable again once that is fixed.
      this.#node = undefined
      this.#push = undefined
      try {
        await node.stop()
      } catch {
        // The start error is the one worth reporting.
      }
      throw err
    }
    this.#running = true
    this.#liveness = liveness
    liveness.start()
    this.#keeper = new PeerKeeper(node, this.#self, this.#bootstrap, this.#log)
    this.#keeper.start()
    this.#log.info({ address: this.address, addrs: this.multiaddrs() }, 'mesh node listening')
  }

  async stop(): Promise<void> {
    this.#running = false
    this.#keeper?.stop()
    this.#keeper = undefined
    this.#liveness?.stop()
    this.#liveness = undefined
    this.#push?.stop()
    this.#push = undefined
    const node = this.#node
    this.#node = undefined
    await node?.stop()
  }

  multiaddrs(): string[] {
    return this.#node?.getMultiaddrs().map((m) => m.toString()) ?? []
  }

  peers(): Address[] {
    const out: Address[] = []
    for (const p of this.#node?.getPeers() ?? []) {
      if (p.type === 'Ed25519') out.push(peerIdToAddress(p))
    }
    return out
  }

  async publishAdvert(input: CapacityAdvert): Promise<void> {
    const advert = parseOrThrow(CapacityAdvert, input, 'capacity advert')
    if (advertPeerAddress(advert.peerId) !== this.address) {
      throw new KilnError('PAYLOAD_INVALID', 'advert.peerId must name this node (its PeerId or its address)', {
        issues: [{ path: 'peerId', message: 'not this node', expected: this.peerId }],
      })
    }
    const envelope = seal(this.#init.identity, Kind.advert, advert, { ttlMs: this.#ttl })
    const bytes = new TextEncoder().encode(JSON.stringify(envelope))
    if (bytes.byteLength > MAX_ADVERT_BYTES) {
      throw new KilnError(
        'ENVELOPE_TOO_LARGE',
        `sealed advert is ${bytes.byteLength} bytes; the limit is ${MAX_ADVERT_BYTES}`,
        { size: bytes.byteLength, maxBytes: MAX_ADVERT_BYTES },
      )
    }
    await this.publishRaw(bytes)
    this.#push?.published(bytes, envelope.expiresAt)
  }

  async publishRaw(data: Uint8Array): Promise<void> {
    await this.#started().services.pubsub.publish(ADVERT_TOPIC, data)
  }

  onAdvert(cb: (ev: AdvertEvent) => void): () => void {
    this.#advertCbs.add(cb)
    return () => this.#advertCbs.delete(cb)
  }

  onPeerDisconnect(cb: (address: Address) => void): () => void {
    this.#disconnectCbs.add(cb)
    return () => this.#disconnectCbs.delete(cb)
  }

  async handle(protocol: string, handler: (ch: Channel) => Promise<void>): Promise<void> {
    this.#handlers.set(protocol, handler)
    if (this.#node !== undefined) await this.#register(protocol, handler)
  }

  async open(peer: Address, protocol: string, opts: OpenOptions = {}): Promise<Channel> {
    const node = this.#started()
    const target = addressToPeerId(peer)
    if (target.equals(this.#self))
      throw new KilnError('PEER_UNREACHABLE', 'cannot open a channel to ourselves', { peer })
    if (node.getConnections(target).length === 0) {
      const addrs = parseAddrs(opts.addrs ?? [], target)
      if (addrs.length > 0) await node.peerStore.merge(target, { multiaddrs: addrs })
    }
    let stream
    let remote: PeerId
    try {
      const conn = await node.dial(target, { signal: opts.signal })
      remote = conn.remotePeer
      stream = await conn.newStream(protocol, { signal: opts.signal })
    } catch (cause) {
      throw new KilnError(
        'PEER_UNREACHABLE',
        `cannot open ${protocol} on ${peer}: ${(cause as Error).message}`,
        { peer, protocol },
        { cause },
      )
    }
    // Noise proved the remote holds this key; a different key here would be a libp2p bug.
    if (!remote.equals(target)) {
      stream.abort(new Error('remote key mismatch'))
      throw new KilnError('PEER_UNREACHABLE', `dialled ${peer} but reached ${remote.toString()}`, { peer, protocol })
    }
    return new FramedChannel(stream, peer, this.#maxFrame)
  }

  #started(): KilnLibp2p {
    if (this.#node === undefined) throw new KilnError('CONFIG_INVALID', 'mesh node is not started')
    return this.#node
  }

  async #register(protocol: string, handler: (ch: Channel) => Promise<void>): Promise<void> {
    await this.#started().handle(
      protocol,
      async (stream, connection) => {
        let ch: FramedChannel
        try {
          ch = new FramedChannel(stream, peerIdToAddress(connection.remotePeer), this.#maxFrame)
        } catch (err) {
          // Not an Ed25519 peer, so it has no Kiln address and nothing to say to us.
          stream.abort(err as Error)
          return
        }
        try {
          await handler(ch)
          await ch.close()
        } catch (err) {
          this.#log.warn({ protocol, peer: ch.remote, err: (err as Error).message }, 'stream handler failed')
          ch.abort(err instanceof Error ? err : new Error(String(err)))
        }
      },
      { force: true },
    )
  }

  /** Runs inside gossipsub before a message is delivered or forwarded; must not throw. */
  #validate(data: Uint8Array): TopicValidatorResult {
    const r = this.#gate.check(data)
    if (!r.ok) {
      this.stats.advertsDropped[r.reason] += 1
      return r.penalise ? TopicValidatorResult.Reject : TopicValidatorResult.Ignore
    }
    this.stats.advertsAccepted += 1
    for (const cb of this.#advertCbs) {
      // Deferred so that a slow or throwing subscriber cannot hold up or break gossip.
      queueMicrotask(() => {
        try {
          cb(r.event)
        } catch (err) {
          this.#log.warn({ err: (err as Error).message }, 'advert subscriber threw')
        }
      })
    }
    return TopicValidatorResult.Accept
  }

  #peerGone(peer: PeerId): void {
    // Our own stop closes every connection; that is not news for subscribers.
    if (!this.#running || peer.type !== 'Ed25519') return
    const address = peerIdToAddress(peer)
    for (const cb of this.#disconnectCbs) {
      try {
        cb(address)
      } catch (err) {
        this.#log.warn({ err: (err as Error).message }, 'disconnect subscriber threw')
      }
    }
  }
}
