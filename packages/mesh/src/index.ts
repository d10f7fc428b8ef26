export { createMeshNode } from './node.ts'
export { addressToPeerId, peerIdToAddress } from './ids.ts'
export { DROP_REASONS, type AdvertEvent, type DropReason } from './adverts.ts'
export type { Channel } from './channel.ts'
export {
  ADVERT_TOPIC, DHT_PROTOCOL, DEFAULT_ADVERT_TTL_MS, DEFAULT_MAX_FRAME_BYTES, MAX_ADVERT_BYTES,
  type MeshInit, type MeshLogger, type MeshNode, type MeshStats, type OpenOptions,
} from './types.ts'
