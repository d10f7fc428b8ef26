import { describe, expect, it } from 'vitest'
import { Identity, Kind, seal, type CapacityAdvert } from '@kiln/protocol'
import { AdvertGate } from '../src/adverts.ts'
import { addressToPeerId, peerIdToAddress } from '../src/index.ts'

const bytes = (v: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(v))

function advert(id: Identity, seq: number, peerId: string = addressToPeerId(id.address).toString()): CapacityAdvert {
  return {
    peerId,
    addrs: [],
    seq,
    hardware: { cpuCores: 4, memoryMb: 8192, diskMb: 1000, gpus: [] },
    free: { cpu: 4, memoryMb: 8000, gpus: 0 },
    pricePerHour: 1000,
    region: 'local',
    version: '0.1.0',
    available: true,
  }
}

describe('PeerId <-> Address', () => {
  it('maps one Ed25519 key both ways', () => {
    const id = Identity.generate()
    const pid = addressToPeerId(id.address)
    expect(pid.type).toBe('Ed25519')
    expect(pid.toString()).toMatch(/^12D3KooW/)
    expect(peerIdToAddress(pid)).toBe(id.address)
    expect(peerIdToAddress(pid.toString())).toBe(id.address)
  })

  it('refuses what is not an Ed25519 key', () => {
    expect(() => peerIdToAddress('not-a-peer-id')).toThrowError(expect.objectContaining({ kind: 'PAYLOAD_INVALID' }))
    expect(() => addressToPeerId('abc' as never)).toThrowError(expect.objectContaining({ kind: 'PAYLOAD_INVALID' }))
  })
})

describe('AdvertGate', () => {
  const id = Identity.generate()

  it('accepts a good advert, with the peerId in either form', () => {
    const gate = new AdvertGate(16 * 1024)
    const r = gate.check(bytes(seal(id, Kind.advert, advert(id, 1), { ttlMs: 30_000 })))
    expect(r).toMatchObject({ ok: true, event: { signer: id.address, advert: { seq: 1 } } })
    expect(gate.check(bytes(seal(id, Kind.advert, advert(id, 2, id.address))))).toMatchObject({ ok: true })
  })

  it('names the reason for each drop and whether the forwarder is to blame', () => {
    const gate = new AdvertGate(16 * 1024)
    const good = seal(id, Kind.advert, advert(id, 5), { ttlMs: 30_000 })
    expect(gate.check(bytes(good)).ok).toBe(true)
    const cases: [unknown, string, boolean][] = [
      [{ ...good, payload: { ...good.payload, seq: 6 } }, 'bad_signature', true],
      [good, 'replayed', false],
      [seal(id, Kind.advert, advert(id, 7), { ttlMs: 1000, now: Date.now() - 10_000 }), 'expired', false],
      [seal(id, Kind.advert, advert(id, 8), { now: Date.now() + 120_000 }), 'not_yet_valid', false],
      [seal(id, Kind.advert, { ...advert(id, 9), seq: -1 }), 'malformed', true],
      [seal(id, Kind.lease, advert(id, 10)), 'malformed', true],
      [seal(id, Kind.advert, advert(Identity.generate(), 11)), 'peer_mismatch', true],
      [seal(id, Kind.advert, advert(id, 5)), 'stale_seq', false],
    ]
    for (const [env, reason, penalise] of cases) expect(gate.check(bytes(env))).toEqual({ ok: false, reason, penalise })
    expect(gate.check(new Uint8Array(16 * 1024 + 1))).toEqual({ ok: false, reason: 'too_large', penalise: true })
    expect(gate.check(new TextEncoder().encode('{'))).toEqual({ ok: false, reason: 'malformed', penalise: true })
  })

  it('hears a restarted provider (seq back at 0) once its last advert expired', () => {
    const gate = new AdvertGate(16 * 1024)
    const t = Date.now()
    expect(gate.check(bytes(seal(id, Kind.advert, advert(id, 50), { ttlMs: 1000, now: t })), t).ok).toBe(true)
    expect(gate.check(bytes(seal(id, Kind.advert, advert(id, 0), { ttlMs: 1000, now: t })), t)).toMatchObject({
      reason: 'stale_seq',
    })
    expect(gate.check(bytes(seal(id, Kind.advert, advert(id, 0), { ttlMs: 1000, now: t + 1500 })), t + 1500).ok).toBe(
      true,
    )
  })
})
