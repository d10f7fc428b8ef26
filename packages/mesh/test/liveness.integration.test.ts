import { afterEach, describe, expect, it } from 'vitest'
import { Identity, type Address } from '@kiln/protocol'
import type { AdvertEvent, MeshNode } from '../src/index.ts'
import { startBlackhole, type Blackhole } from './blackhole.ts'
import { report, sampleAdvert, startNode, stopAll, waitFor } from './helpers.ts'

// Real libp2p over TCP on 127.0.0.1, several nodes in this one process.
const started: MeshNode[] = []
const holes: Blackhole[] = []
afterEach(async () => {
  await stopAll(started)
  await Promise.all(holes.splice(0).map((h) => h.close()))
})

const tcpPort = (node: MeshNode): number => Number(/\/tcp\/(\d+)/.exec(node.multiaddrs()[0] ?? '')?.[1])

describe('liveness', () => {
  it('drops a peer that hangs without closing its connection within a few seconds (defaults)', async () => {
    const b = await startNode(started)
    // A reaches B only through a forwarder that can freeze: no FIN, no RST, just silence. A
    // listens nowhere, so B (alive, unlike a real hung process) cannot dial it back directly.
    const hole = await startBlackhole(tcpPort(b))
    holes.push(hole)
    const a = await startNode(started, { listen: [], bootstrap: [`/ip4/127.0.0.1/tcp/${hole.port}/p2p/${b.peerId}`] })
    await waitFor(() => a.peers().includes(b.address), 'A connected to B')
    const gone: Address[] = []
    a.onPeerDisconnect((addr) => gone.push(addr))
    // Several probe rounds on a healthy path first: none of them may drop it.
    await new Promise((r) => setTimeout(r, 2_500))
    expect(gone).toEqual([])

    const t = Date.now()
    hole.hang()
    await waitFor(() => gone.includes(b.address), 'A to drop the hung B', 10_000)
    const ms = Date.now() - t
    report(`hung peer dropped ${ms} ms after it went silent (a beat every 1 s, timeout 3 s)`)
    // 3 s of silence counted from the last beat, which came at most one interval before the hang.
    expect(ms).toBeGreaterThanOrEqual(1_900)
    expect(ms).toBeLessThan(6_000)
  })

  it('keeps a live peer while its own event loop is stalled for longer than the timeout', async () => {
    const liveness = { intervalMs: 200, timeoutMs: 1_000 }
    const b = await startNode(started, { liveness })
    const a = await startNode(started, { liveness, bootstrap: b.multiaddrs() })
    await waitFor(() => a.peers().includes(b.address) && b.peers().includes(a.address), 'A and B connected')
    await new Promise((r) => setTimeout(r, 600)) // beats are flowing
    const gone: Address[] = []
    a.onPeerDisconnect((addr) => gone.push(addr))
    b.onPeerDisconnect((addr) => gone.push(addr))
    // Three timeouts of busy CPU, as a starved process on an overloaded machine sees it: the
    // peer's beats are waiting in the socket when the loop comes back, and must count.
    const until = Date.now() + 3_000
    while (Date.now() < until) {
      /* stall */
    }
    await new Promise((r) => setTimeout(r, 1_500))
    expect(gone).toEqual([])
    expect(a.peers()).toContain(b.address)
  })
})

describe('advert push', () => {
  it('hands an advert published before anyone was connected to a peer that connects later', async () => {
    const p = await startNode(started)
    await p.publishAdvert(sampleAdvert(p, 1)) // nobody hears this over gossip
    const got: AdvertEvent[] = []
    const t = Date.now()
    const m = await startNode(started, { bootstrap: p.multiaddrs() })
    m.onAdvert((ev) => got.push(ev))
    await waitFor(() => got.length === 1, 'the advert at the newcomer', 5_000)
    report(`advert published before any peer existed reached a later peer ${Date.now() - t} ms after it started`)
    expect(got[0]).toMatchObject({ signer: p.address, advert: { seq: 1 } })
    expect(m.stats.advertsAccepted).toBe(1)
  })

  it("rebuilds a restarted bootstrap node's view without anyone publishing again", async () => {
    const identity = Identity.generate()
    const m = await startNode(started, { identity })
    const listen = m.multiaddrs().map((a) => a.replace(/\/p2p\/.*$/, ''))
    const providers = await Promise.all([0, 1, 2].map(() => startNode(started, { bootstrap: m.multiaddrs() })))
    const seen = new Set<Address>()
    m.onAdvert((ev) => seen.add(ev.signer))
    for (const p of providers) await p.publishAdvert(sampleAdvert(p, 1))
    await waitFor(() => seen.size === 3, 'the first adverts at the bootstrap node')

    await m.stop()
    // The same key on the same address, as a restarted marketplace would come back. Its
    // bootstrap list is empty: it is the providers that must find it again.
    const m2 = await startNode(started, { identity, listen })
    const again = new Set<Address>()
    m2.onAdvert((ev) => again.add(ev.signer))
    const t = Date.now()
    await waitFor(() => again.size === 3, "every provider's advert at the restarted node", 15_000)
    report(
      `restarted bootstrap node had all 3 providers' adverts back ${Date.now() - t} ms after it started (no new publish)`,
    )
  })
})
