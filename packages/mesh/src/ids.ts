import { privateKeyFromRaw, publicKeyFromRaw } from '@libp2p/crypto/keys'
import { peerIdFromPublicKey, peerIdFromString } from '@libp2p/peer-id'
import type { PeerId, PrivateKey } from '@libp2p/interface'
import {
  KilnError,
  addressFromPublicKey,
  isAddress,
  publicKeyFromAddress,
  type Address,
  type Identity,
} from '@kiln/protocol'

/**
 * A Kiln Address is the base58 of a raw Ed25519 public key; a libp2p PeerId wraps the same
 * key in a multihash. The two are interchangeable, which is what lets a node dial a peer
 * knowing only its Solana address.
 */
export function addressToPeerId(a: Address): PeerId {
  if (!isAddress(a)) throw new KilnError('PAYLOAD_INVALID', 'not a valid address', { address: a })
  return peerIdFromPublicKey(publicKeyFromRaw(publicKeyFromAddress(a)))
}

export function peerIdToAddress(p: PeerId | string): Address {
  let id: PeerId
  try {
    id = typeof p === 'string' ? peerIdFromString(p) : p
  } catch (cause) {
    throw new KilnError('PAYLOAD_INVALID', 'not a valid PeerId', { peerId: String(p) }, { cause })
  }
  if (id.type !== 'Ed25519') {
    throw new KilnError('PAYLOAD_INVALID', `a ${id.type} PeerId has no Kiln address; only Ed25519 keys do`, {
      peerId: id.toString(),
    })
  }
  return addressFromPublicKey(id.publicKey.raw)
}

/** The libp2p private key for an Identity: the same 64-byte Ed25519 secret (seed ‖ public key). */
export function libp2pPrivateKey(identity: Identity): PrivateKey {
  return privateKeyFromRaw(identity.exportSecretKey())
}

/**
 * Resolves the `peerId` field of an advert to an Address. Adverts may carry either the
 * libp2p form (12D3KooW…) or the Address form of the key; both name the same key.
 * Returns undefined when the field names no Ed25519 key.
 */
export function advertPeerAddress(peerId: string): Address | undefined {
  if (isAddress(peerId)) return peerId
  try {
    return peerIdToAddress(peerId)
  } catch {
    return undefined
  }
}
