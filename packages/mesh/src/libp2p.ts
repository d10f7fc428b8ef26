import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { bootstrap } from '@libp2p/bootstrap'
import { gossipsub, type GossipSub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { kadDHT, passthroughMapper, type KadDHT } from '@libp2p/kad-dht'
import { ping, type Ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import type { Identify } from '@libp2p/identify'
import type { PrivateKey } from '@libp2p/interface'
import { createLibp2p, type Libp2p } from 'libp2p'
import { ADVERT_TOPIC, DHT_PROTOCOL, MAX_ADVERT_BYTES } from './types.ts'

export type KilnServices = { identify: Identify; ping: Ping; dht: KadDHT; pubsub: GossipSub }
export type KilnLibp2p = Libp2p<KilnServices>

/** Gossipsub's seen-cache key for a message as it arrives: its publisher and sequence number. */
function fastMsgId(m: { from?: Uint8Array; seqno?: Uint8Array }): string {
  // Without both the message is invalid under the signing policy, and an invalid one is never
  // recorded as seen, so every such message maps to the same (never seen) key.
  return m.from === undefined || m.seqno === undefined
    ? ''
    : `${Buffer.from(m.from).toString('base64')}/${Buffer.from(m.seqno).toString('base64')}`
}

/** Largest flow-control window a stream may grant; bounds what a paused Channel holds. */
const MAX_STREAM_WINDOW = 4 * 1024 * 1024

export interface Libp2pParams {
  privateKey: PrivateKey
  listen: string[]
  bootstrap: string[]
}

/**
 * The libp2p configuration of a Kiln node. The tuning is for many nodes that may share one IP
 * (a devnet on loopback, providers behind one NAT), where libp2p's defaults treat a burst of
 * connections from one host as an attack and gossipsub scores co-located peers down.
 */
export async function buildLibp2p(p: Libp2pParams): Promise<KilnLibp2p> {
  return createLibp2p({
    privateKey: p.privateKey,
    start: false,
    addresses: { listen: p.listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [
      yamux({
        streamOptions: {
          maxStreamWindowSize: MAX_STREAM_WINDOW,
          // Above the window, so that a paused reader is stopped by flow control, never reset.
          maxReadBufferLength: 2 * MAX_STREAM_WINDOW,
        },
      }),
    ],
    connectionManager: {
      // Default 5 per second per host: a devnet's nodes all dial from 127.0.0.1 at once.
      inboundConnectionThreshold: 1_000,
      maxIncomingPendingConnections: 100,
      maxConnections: 300,
    },
    // Replaced by our LivenessMonitor: this one takes 10-15 s to drop a hung peer, and made
    // faster it is costly and cuts live peers off when our own event loop stalls (liveness.ts).
    connectionMonitor: { enabled: false },
    // @libp2p/bootstrap dials the list once, after `timeout`; PeerKeeper re-dials it later.
    peerDiscovery: p.bootstrap.length > 0 ? [bootstrap({ list: p.bootstrap, timeout: 10 })] : [],
    services: {
      identify: identify(),
      ping: ping(),
      dht: kadDHT({
        protocol: DHT_PROTOCOL,
        clientMode: false,
        // The default mapper drops private and loopback addresses, which are all a devnet has.
        peerInfoMapper: passthroughMapper,
        initialQuerySelfInterval: 200,
      }),
      pubsub: gossipsub({
        allowPublishToZeroTopicPeers: true,
        // The mesh forms and repairs per heartbeat. A newcomer no longer waits on it (adverts
        // reach direct peers by flood publish and AdvertPush), and each heartbeat costs: at
        // 300 ms it was a quarter of an idle provider's CPU in a 12-node devnet (profiled).
        heartbeatInterval: 700,
        // Counted in heartbeats: keep the default time windows (history ~5 s, gossip ~3 s) at
        // this heartbeat, so a peer that joins the mesh late still hears of recent adverts.
        mcacheLength: 7,
        mcacheGossip: 4,
        // Each advert arrives from several mesh peers. Without this, gossipsub checks the
        // signature of every copy before it looks in its seen cache: in a 20-node devnet that
        // was a sixth of an idle provider's CPU (profiled). Publisher key and sequence number
        // are what the message id is made of anyway; a copy only counts as seen once one
        // with a valid signature has been.
        fastMsgIdFn: fastMsgId,
        // Only our own topic: others cannot make us track or relay theirs.
        allowedTopics: [ADVERT_TOPIC],
        // Room for an RPC holding several adverts; each advert is capped at MAX_ADVERT_BYTES by
        // our validator, which must see oversize ones to count them.
        maxInboundDataLength: 64 * MAX_ADVERT_BYTES,
        scoreParams: {
          IPColocationFactorWhitelist: new Set(['127.0.0.1', '::1']),
        },
      }),
    },
  })
}
