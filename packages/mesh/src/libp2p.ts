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
    // @libp2p/bootstrap dials the list once, after `timeout`; MeshNode re-dials it later.
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
        // The mesh forms and repairs per heartbeat; the default 1 s makes a fresh node wait.
        heartbeatInterval: 300,
        // Counted in heartbeats: keep the default time windows (history 5 s, gossip 3 s) at the
        // faster heartbeat, so a peer that joins the mesh late still hears of recent adverts.
        mcacheLength: 16,
        mcacheGossip: 10,
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
