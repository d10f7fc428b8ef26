export { createMeshNode } from './node.ts'
export { addressToPeerId, peerIdToAddress } from './ids.ts'
export {
  DROP_REASONS,
  createAdvertGate,
  type AdvertEvent,
  type AdvertValidator,
  type DropReason,
  type GateResult,
} from './adverts.ts'
export type { Channel } from './channel.ts'
export {
  ADVERT_PUSH_PROTOCOL,
  ADVERT_TOPIC,
  DHT_PROTOCOL,
  LIVENESS_PROTOCOL,
  DEFAULT_ADVERT_TTL_MS,
  DEFAULT_MAX_FRAME_BYTES,
  MAX_ADVERT_BYTES,
  type LivenessInit,
  type MeshInit,
  type MeshNode,
  type MeshStats,
  type OpenOptions,
} from './types.ts'
