import type { Address, CapacityAdvert, Identity, Logger } from '@kiln/protocol'
import type { AdvertEvent, DropReason } from './adverts.ts'
import type { Channel } from './channel.ts'

/** The gossipsub topic capacity adverts travel on. The suffix is the advert format version. */
export const ADVERT_TOPIC = 'kiln/adverts/1'
/** Our own DHT, kept apart from the public IPFS DHT so that only Kiln nodes fill its tables. */
export const DHT_PROTOCOL = '/kiln/kad/1.0.0'
/** One-frame stream that hands a peer our current advert when gossip cannot reach it yet. */
export const ADVERT_PUSH_PROTOCOL = '/kiln/advert-push/1.0.0'
/** One long-lived stream per connection and side, carrying 1-byte beats; silence means hung. */
export const LIVENESS_PROTOCOL = '/kiln/alive/1.0.0'
export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024
export const DEFAULT_ADVERT_TTL_MS = 30_000
/** An advert is a few hundred bytes; anything far bigger is dropped before it is parsed. */
export const MAX_ADVERT_BYTES = 16 * 1024

export interface MeshInit {
  /** The node's Ed25519 key: its PeerId and its Solana address are this one key. */
  identity: Identity
  /** Default ['/ip4/127.0.0.1/tcp/0']. */
  listen?: string[]
  /** Multiaddrs ending in /p2p/<peerId>; several are allowed and recommended. Our own is skipped. */
  bootstrap?: string[]
  /** Per-frame limit on Channel protocols; default 1 MiB. */
  maxFrameBytes?: number
  /** Lifetime of the adverts this node publishes; default 30 s. */
  advertTtlMs?: number
  /** How fast a peer that stopped answering (hung, not closed) is dropped. */
  liveness?: LivenessInit
  logger?: Logger
}

export interface LivenessInit {
  /** Each side of a connection sends a 1-byte beat this often; default 1 s. */
  intervalMs?: number
  /**
   * A connection whose peer sent nothing for this long (not counting time our own event loop
   * was stalled) is closed; default 3 s, at least twice the interval. Raised for a peer whose
   * beats have been arriving late or irregularly (up to 4x), so that a busy but live peer is
   * not cut off.
   */
  timeoutMs?: number
}

export interface MeshStats {
  advertsAccepted: number
  advertsDropped: Record<DropReason, number>
}

export interface OpenOptions {
  /** Where to find the peer when not connected yet (e.g. the addrs of its advert). */
  addrs?: string[]
  signal?: AbortSignal
}

export interface MeshNode {
  readonly peerId: string
  readonly address: Address
  start(): Promise<void>
  stop(): Promise<void>
  /** Listening addresses, each ending in /p2p/<peerId>; empty before start. */
  multiaddrs(): string[]
  /** Addresses of the peers we hold a connection to. */
  peers(): Address[]
  /** Seals the advert as Kind.advert (TTL advertTtlMs) and publishes it on ADVERT_TOPIC. */
  publishAdvert(advert: CapacityAdvert): Promise<void>
  /** Called for every valid advert from another node. Returns an unsubscribe function. */
  onAdvert(cb: (ev: AdvertEvent) => void): () => void
  /** Called when the last connection to a peer closed. Returns an unsubscribe function. */
  onPeerDisconnect(cb: (address: Address) => void): () => void
  readonly stats: MeshStats
  /**
   * Serves `protocol` (e.g. '/kiln/job/1'): each inbound stream becomes a Channel. The channel
   * is closed when the handler returns and aborted when it throws.
   */
  handle(protocol: string, handler: (ch: Channel) => Promise<void>): Promise<void>
  /** Opens `protocol` on the peer with this address, dialling it first when not connected. */
  open(peer: Address, protocol: string, opts?: OpenOptions): Promise<Channel>
  /**
   * Publishes raw bytes on the advert topic without sealing them. For tests and tooling only:
   * receivers validate every message, so it can only ever produce dropped adverts.
   */
  publishRaw(data: Uint8Array): Promise<void>
}
