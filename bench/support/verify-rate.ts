import { createPublicKey, verify } from 'node:crypto'
import bs58 from 'bs58'
import { addressToPeerId, createAdvertGate } from '@kiln/mesh'
import { canonicalJson, Identity, Kind, seal, type CapacityAdvert, type Envelope } from '@kiln/protocol'

export interface VerifyRate {
  adverts: number
  signers: number
  /** Through the mesh's advert gate: size, JSON, envelope shape, signature, window, nonce, schema, peer, seq. */
  gatePerSec: number
  /** Bare Ed25519 verifications (node:crypto) of the same signed bytes. */
  rawPerSec: number
  bytesPerAdvert: number
}

// As in @kiln/protocol's envelope.ts; every raw verification below must succeed, which checks it.
const DOMAIN = 'kiln-envelope-v1\n'
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')

function advert(id: Identity, seq: number): CapacityAdvert {
  const peerId = addressToPeerId(id.address).toString()
  return {
    peerId,
    addrs: [`/ip4/127.0.0.1/tcp/${40_000 + (seq % 20_000)}/p2p/${peerId}`],
    seq,
    hardware: {
      cpuCores: 16,
      memoryMb: 65_536,
      diskMb: 1_000_000,
      gpus: [{ index: 0, model: 'NVIDIA GeForce RTX 4090', vramMb: 24_564 }],
    },
    free: { cpu: 16, memoryMb: 60_000, gpus: 1 },
    pricePerHour: 450_000,
    region: 'eu-west',
    version: '0.1.0',
    available: true,
  }
}

/**
 * How many signed adverts per second one node verifies, measured in this process: `count`
 * adverts from `signers` keys, each checked once by a fresh gate (so none is a replay or a
 * stale seq), next to raw crypto.verify calls over the very same bytes as the floor.
 */
export function measureVerifyRate(count = 20_000, signers = 200): VerifyRate {
  const ids = Array.from({ length: signers }, () => Identity.generate())
  const envs: Envelope<CapacityAdvert>[] = []
  for (let i = 0; i < count; i++) {
    const id = ids[i % signers] as Identity
    envs.push(seal(id, Kind.advert, advert(id, 1 + Math.floor(i / signers)), { ttlMs: 600_000 }))
  }
  const wire = envs.map((e) => new TextEncoder().encode(JSON.stringify(e)))
  const raw = envs.map((e) => {
    const { v, kind, payload, signer, issuedAt, expiresAt, nonce } = e
    return {
      msg: new TextEncoder().encode(DOMAIN + canonicalJson({ v, kind, payload, signer, issuedAt, expiresAt, nonce })),
      key: createPublicKey({ key: Buffer.concat([SPKI_PREFIX, bs58.decode(signer)]), format: 'der', type: 'spki' }),
      sig: bs58.decode(e.sig),
    }
  })

  // Warm both paths (JIT, key caches) on a separate gate, then time each over everything.
  const warm = createAdvertGate()
  for (let i = 0; i < Math.min(500, count); i++) warm.check(wire[i] as Uint8Array)
  const gate = createAdvertGate()
  let t = performance.now()
  let ok = 0
  for (const w of wire) if (gate.check(w).ok) ok++
  const gateMs = performance.now() - t
  if (ok !== count) throw new Error(`the gate accepted ${ok} of ${count} good adverts`)

  t = performance.now()
  let good = 0
  for (const r of raw) if (verify(null, r.msg, r.key, r.sig)) good++
  const rawMs = performance.now() - t
  if (good !== count) throw new Error(`raw verify accepted ${good} of ${count}: the signing-bytes layout changed`)

  return {
    adverts: count,
    signers,
    gatePerSec: Math.round(count / (gateMs / 1000)),
    rawPerSec: Math.round(count / (rawMs / 1000)),
    bytesPerAdvert: Math.round(wire.reduce((s, w) => s + w.byteLength, 0) / count),
  }
}
