import { afterEach, describe, expect, it } from 'vitest'
import { Identity, Kind, seal, type Address, type CapacityAdvert, type Envelope } from '@kiln/protocol'
import type { AdvertEvent, Channel, MeshNode } from '../src/index.ts'
import { report, sampleAdvert, startNode, stopAll, waitFor } from './helpers.ts'

// Real libp2p over TCP on 127.0.0.1, several nodes in this one process.
const started: MeshNode[] = []
afterEach(async () => {
  await stopAll(started)
})

const bytes = (v: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(v))

describe('capacity adverts over gossipsub', () => {
  it('reach every node of a 5-node mesh with 2 bootstrap nodes, and the mesh is not a star', async () => {
    const t0 = Date.now()
    const b1 = await startNode(started)
    const b2 = await startNode(started, { bootstrap: b1.multiaddrs() })
    // Every node gets the same list, as a devnet would hand it out; a node skips itself.
    const list = [...b1.multiaddrs(), ...b2.multiaddrs()]
    const others = await Promise.all([0, 1, 2].map(() => startNode(started, { bootstrap: list })))
    const nodes = [b1, b2, ...others]
    const boot = new Set<Address>([b1.address, b2.address])

    // More than the bootstrap nodes: every ordinary node also holds a link to another ordinary node.
    await waitFor(
      () => others.every((n) => n.peers().some((p) => !boot.has(p))),
      'links between non-bootstrap nodes',
      8_000,
    )
    const meshMs = Date.now() - t0

    const publisher = others[2] as MeshNode
    const seen = new Map<Address, { ev: AdvertEvent; at: number }>()
    for (const n of nodes) {
      if (n !== publisher) n.onAdvert((ev) => seen.set(n.address, { ev, at: Date.now() }))
    }
    // A node that has just joined may not have heard its neighbours' subscriptions yet;
    // providers re-advertise every few seconds anyway, so the test does the same.
    const tPublish = Date.now()
    let seq = 1
    await publisher.publishAdvert(sampleAdvert(publisher, seq))
    const retry = setInterval(() => void publisher.publishAdvert(sampleAdvert(publisher, ++seq)), 1_000)
    try {
      await waitFor(() => seen.size === 4, 'the advert at all 4 other nodes', 5_000)
    } finally {
      clearInterval(retry)
    }
    const lastMs = Math.max(...[...seen.values()].map((s) => s.at)) - tPublish
    const degree = nodes.map((n) => n.peers().length)
    report(
      `5 nodes: mesh formed in ${meshMs} ms; advert seen by all 4 others ${lastMs} ms after publish (publishes: ${seq}); peers per node ${degree.join(',')}`,
    )

    for (const { ev } of seen.values()) {
      expect(ev.signer).toBe(publisher.address)
      expect(ev.advert.peerId).toBe(publisher.peerId)
      expect(ev.expiresAt).toBeGreaterThan(Date.now())
      expect(ev.expiresAt - ev.receivedAt).toBeLessThanOrEqual(30_000)
    }
    expect(b1.stats.advertsAccepted).toBeGreaterThanOrEqual(1)
  })

  it('drops and counts forged, replayed, expired, oversized, malformed, mismatched and stale adverts', async () => {
    const idA = Identity.generate()
    const a = await startNode(started, { identity: idA })
    const b = await startNode(started, { bootstrap: a.multiaddrs() })
    const got: AdvertEvent[] = []
    b.onAdvert((ev) => got.push(ev))
    const stranger = Identity.generate()

    // Good adverts first, until B has one: this proves the path A -> B.
    const sent = new Map<number, Envelope<CapacityAdvert>>()
    for (let seq = 10; got.length === 0; seq++) {
      if (seq > 40) throw new Error('no advert reached B')
      const env = seal(idA, Kind.advert, sampleAdvert(a, seq), { ttlMs: 30_000 })
      sent.set(seq, env)
      await a.publishRaw(bytes(env))
      await new Promise((r) => setTimeout(r, 200))
    }
    await new Promise((r) => setTimeout(r, 300)) // let any good advert still in flight land
    const accepted = b.stats.advertsAccepted
    const before = { ...b.stats.advertsDropped }
    const lastSeq = Math.max(...got.map((ev) => ev.advert.seq))
    const good = sent.get(lastSeq) as Envelope<CapacityAdvert>

    const forged = { ...good, payload: { ...good.payload, pricePerHour: 1 } }
    const expired = seal(idA, Kind.advert, sampleAdvert(a, 100), { ttlMs: 1_000, now: Date.now() - 60_000 })
    const mismatched = seal(stranger, Kind.advert, sampleAdvert(a, 101), { ttlMs: 30_000 })
    const stale = seal(idA, Kind.advert, sampleAdvert(a, lastSeq), { ttlMs: 30_000 })
    await a.publishRaw(bytes(forged))
    await a.publishRaw(bytes(good)) // replay of the very same envelope
    await a.publishRaw(bytes(expired))
    await a.publishRaw(new Uint8Array(20 * 1024).fill(0x7b))
    await a.publishRaw(new TextEncoder().encode('not json'))
    await a.publishRaw(bytes(mismatched))
    await a.publishRaw(bytes(stale))

    const total = (r: Record<string, number>): number => Object.values(r).reduce((x, y) => x + y, 0)
    await waitFor(() => total(b.stats.advertsDropped) - total(before) >= 7, 'seven drops', 5_000)
    const delta = Object.fromEntries(
      Object.entries(b.stats.advertsDropped).map(([k, v]) => [k, v - (before[k as keyof typeof before] ?? 0)]),
    )
    expect(delta).toEqual({
      bad_signature: 1,
      replayed: 1,
      expired: 1,
      not_yet_valid: 0,
      too_large: 1,
      malformed: 1,
      peer_mismatch: 1,
      stale_seq: 1,
    })
    expect(b.stats.advertsAccepted).toBe(accepted)
    expect(got).toHaveLength(accepted)
    await expect(a.publishAdvert({ ...sampleAdvert(a, 200), peerId: stranger.address })).rejects.toMatchObject({
      kind: 'PAYLOAD_INVALID',
    })
  })
})

describe('channels', () => {
  it('round-trips JSON and a 512 KiB frame by address, and enforces the frame limit on both ends', async () => {
    const a = await startNode(started)
    const b = await startNode(started)
    const big = await startNode(started, { maxFrameBytes: 4 * 1024 * 1024 })
    const seenByB: { remote: Address; error?: string }[] = []
    await b.handle('/kiln/test/echo/1', async (ch: Channel) => {
      const rec: { remote: Address; error?: string } = { remote: ch.remote }
      seenByB.push(rec)
      try {
        for (;;) {
          const frame = await ch.next(5_000)
          if (frame === undefined) return
          await ch.send(frame)
        }
      } catch (err) {
        rec.error = (err as { kind?: string }).kind
        throw err
      }
    })

    // A and B are not connected: A dials B knowing only its address and advertised addrs.
    expect(a.peers()).not.toContain(b.address)
    const ch = await a.open(b.address, '/kiln/test/echo/1', { addrs: b.multiaddrs() })
    expect(ch.remote).toBe(b.address)
    await ch.sendJson({ hello: 'kiln', n: 42 })
    expect(await ch.nextJson(5_000)).toEqual({ hello: 'kiln', n: 42 })

    const payload = new Uint8Array(512 * 1024).map((_, i) => (i * 31) & 0xff)
    const t = Date.now()
    await ch.send(payload)
    const echoed = await ch.next(5_000)
    report(`512 KiB frame round trip: ${Date.now() - t} ms`)
    // Compared as Buffers: vitest's deep equality takes a second over half a million bytes.
    expect(echoed !== undefined && Buffer.from(echoed).equals(payload)).toBe(true)

    await expect(ch.send(new Uint8Array(1024 * 1024 + 1))).rejects.toMatchObject({
      kind: 'STREAM_FRAME_TOO_LARGE',
      code: 'KILN_6003',
    })
    await expect(ch.next(100)).rejects.toMatchObject({ kind: 'PEER_UNREACHABLE', context: { timeout: true } })
    await ch.close()
    expect(await ch.next(5_000)).toBeUndefined()
    await waitFor(() => seenByB.length === 1, 'B to see the channel')
    expect(seenByB[0]?.remote).toBe(a.address)

    // A sender with a larger limit: B's side refuses the frame before reading it.
    const ch2 = await big.open(b.address, '/kiln/test/echo/1', { addrs: b.multiaddrs() })
    await ch2.send(new Uint8Array(2 * 1024 * 1024))
    await waitFor(() => seenByB[1]?.error !== undefined, 'B to reject the oversize frame')
    expect(seenByB[1]).toEqual({ remote: big.address, error: 'STREAM_FRAME_TOO_LARGE' })
    await expect(ch2.next(5_000)).rejects.toThrow()

    await expect(a.open(b.address, '/kiln/test/nobody-serves-this/1')).rejects.toMatchObject({
      kind: 'PEER_UNREACHABLE',
    })
    const absent = Identity.generate()
    await expect(
      a.open(absent.address, '/kiln/test/echo/1', {
        addrs: ['/ip4/127.0.0.1/tcp/9'],
        signal: AbortSignal.timeout(3_000),
      }),
    ).rejects.toMatchObject({ kind: 'PEER_UNREACHABLE' })
  })

  it('holds a sender back while the receiver does not read, and loses nothing', async () => {
    const a = await startNode(started)
    const b = await startNode(started)
    let release!: () => void
    const reading = new Promise<void>((r) => (release = r))
    const received: number[] = []
    await b.handle('/kiln/test/sink/1', async (ch) => {
      await reading
      for (let f = await ch.next(5_000); f !== undefined; f = await ch.next(5_000)) received.push(f[0] ?? -1)
    })
    const ch = await a.open(b.address, '/kiln/test/sink/1', { addrs: b.multiaddrs() })
    const frames = 40 // 20 MiB in all, far above what flow control lets sit in buffers
    let sent = 0
    const sending = (async () => {
      for (let i = 0; i < frames; i++) {
        await ch.send(new Uint8Array(512 * 1024).fill(i))
        sent++
      }
      await ch.close()
    })()
    await new Promise((r) => setTimeout(r, 500))
    const sentWhileStalled = sent
    // Bounded by one frame queued here, the 4 MiB flow-control window and one frame at B.
    expect(sentWhileStalled).toBeLessThanOrEqual(16)
    release()
    await sending
    await waitFor(() => received.length === frames, 'all frames at B', 10_000)
    expect(received).toEqual(Array.from({ length: frames }, (_, i) => i))
    report(`backpressure: ${sentWhileStalled} of ${frames} 512 KiB frames accepted while the receiver was not reading`)
  })
})

describe('peer loss', () => {
  it('calls onPeerDisconnect with the address of a node that stopped', async () => {
    const a = await startNode(started)
    const b = await startNode(started, { bootstrap: a.multiaddrs() })
    await waitFor(() => a.peers().includes(b.address), 'A connected to B')
    const gone: Address[] = []
    a.onPeerDisconnect((addr) => gone.push(addr))
    const t = Date.now()
    await b.stop()
    await waitFor(() => gone.includes(b.address), 'the disconnect of B', 5_000)
    report(`peer disconnect noticed ${Date.now() - t} ms after stop()`)
  })
})
