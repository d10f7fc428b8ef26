import { CapacityAdvert, Kind, NonceCache, isKilnError, open, type Address } from '@kiln/protocol'
import { advertPeerAddress } from './ids.ts'
import { MAX_ADVERT_BYTES } from './types.ts'

/** Why an advert from the network was dropped; each is counted in `stats.advertsDropped`. */
export const DROP_REASONS = [
  'too_large',
  'bad_signature',
  'expired',
  'not_yet_valid',
  'replayed',
  'malformed',
  'stale_seq',
  'peer_mismatch',
] as const
export type DropReason = (typeof DROP_REASONS)[number]

export interface AdvertEvent {
  advert: CapacityAdvert
  /** The key that signed the envelope; equal to the key named by `advert.peerId`. */
  signer: Address
  expiresAt: number
  receivedAt: number
}

export type GateResult =
  | { ok: true; event: AdvertEvent }
  // `penalise` says whether the forwarding peer is at fault: an honest peer validates before
  // forwarding, so it never relays a forged or malformed advert, but it may relay one that
  // expired in transit or that we have already seen by another path.
  | { ok: false; reason: DropReason; penalise: boolean }

/** The checks a node runs on every advert from the network, with its own replay and seq memory. */
export interface AdvertValidator {
  check(data: Uint8Array, now?: number): GateResult
}

/** The advert gate a mesh node uses, on its own: for tools and benchmarks that verify adverts. */
export function createAdvertGate(maxBytes = MAX_ADVERT_BYTES): AdvertValidator {
  return new AdvertGate(maxBytes)
}

/** The most sequence numbers we remember; past this, entries whose advert expired are pruned. */
const MAX_TRACKED_SIGNERS = 100_000

/**
 * Validates adverts received on the gossip topic: size before parsing, then the envelope
 * (signature, time window, replay, schema), then that the signer is the advertised peer and
 * that its sequence number moved forward. Never throws.
 */
export class AdvertGate implements AdvertValidator {
  readonly #maxBytes: number
  readonly #nonces = new NonceCache(200_000)
  readonly #seq = new Map<Address, { seq: number; expiresAt: number }>()

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes
  }

  check(data: Uint8Array, now = Date.now()): GateResult {
    if (data.byteLength > this.#maxBytes) return { ok: false, reason: 'too_large', penalise: true }
    let opened
    try {
      opened = open(data, {
        kind: Kind.advert,
        schema: CapacityAdvert,
        nonces: this.#nonces,
        maxBytes: this.#maxBytes,
        now,
      })
    } catch (err) {
      return { ok: false, ...classify(err) }
    }
    const { payload: advert, signer, envelope } = opened
    if (advertPeerAddress(advert.peerId) !== signer) return { ok: false, reason: 'peer_mismatch', penalise: true }
    const last = this.#seq.get(signer)
    // Once the last accepted advert has expired the order no longer matters, so a provider that
    // restarted and lost its counter is heard again after one TTL.
    if (last !== undefined && last.expiresAt > now && advert.seq <= last.seq)
      return { ok: false, reason: 'stale_seq', penalise: false }
    if (last === undefined && this.#seq.size >= MAX_TRACKED_SIGNERS) this.#prune(now)
    this.#seq.set(signer, { seq: advert.seq, expiresAt: envelope.expiresAt })
    return { ok: true, event: { advert, signer, expiresAt: envelope.expiresAt, receivedAt: now } }
  }

  #prune(now: number): void {
    for (const [k, v] of this.#seq) if (v.expiresAt <= now) this.#seq.delete(k)
    // Still full of live signers: forget the oldest rather than grow without bound.
    if (this.#seq.size >= MAX_TRACKED_SIGNERS) {
      const oldest = this.#seq.keys().next().value
      if (oldest !== undefined) this.#seq.delete(oldest)
    }
  }
}

function classify(err: unknown): { reason: DropReason; penalise: boolean } {
  if (!isKilnError(err)) return { reason: 'malformed', penalise: true }
  switch (err.kind) {
    case 'ENVELOPE_TOO_LARGE':
      return { reason: 'too_large', penalise: true }
    case 'ENVELOPE_BAD_SIGNATURE':
      return { reason: 'bad_signature', penalise: true }
    case 'ENVELOPE_EXPIRED':
      return { reason: 'expired', penalise: false }
    case 'ENVELOPE_NOT_YET_VALID':
      // Clock skew between honest nodes looks like this too.
      return { reason: 'not_yet_valid', penalise: false }
    case 'ENVELOPE_REPLAYED':
      return { reason: 'replayed', penalise: false }
    default:
      return { reason: 'malformed', penalise: true }
  }
}
