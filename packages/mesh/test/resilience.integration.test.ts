import { afterEach, describe, expect, it } from 'vitest'
import type { Address } from '@kiln/protocol'
import type { MeshNode } from '../src/index.ts'
import { report, sampleAdvert, startNode, stopAll, waitFor } from './helpers.ts'

// Real libp2p over TCP on 127.0.0.1, 8 nodes in this one process. Every node is handed the
// same 2 bootstrap addresses; what keeps the mesh whole when one node goes is that each node
// also dials the peers it discovers.
const started: MeshNode[] = []
afterEach(async () => {
  await stopAll(started)
})

describe('the mesh survives the loss of one node', () => {
  it('stays whole without the first bootstrap node, and a newcomer still joins through the second', async () => {
    const { nodes, b1, b2 } = await startMesh(8)
    const rest = nodes.filter((n) => n !== b1)
    await b1.stop()
    await waitFor(
      () => rest.every((n) => !n.peers().includes(b1.address)),
      'everyone to notice the bootstrap node left',
    )
    expect(components(rest)).toBe(1)

    const ms = await reachesAll(rest[rest.length - 1] as MeshNode, rest, 1)
    report(
      `8 nodes, bootstrap node 1 stopped: an advert published afterwards reached the other ${rest.length - 1} in ${ms} ms`,
    )

    // A newcomer handed both bootstrap addresses, one of them dead, joins through the other.
    const late = await startNode(started, { bootstrap: [...b1.multiaddrs(), ...b2.multiaddrs()] })
    await waitFor(() => late.peers().length >= 2, 'the newcomer to find peers beyond the live bootstrap node', 10_000)
    const all = [...rest, late]
    await reachesAll(late, all, 2)
    await reachesAll(rest[2] as MeshNode, all, 3)
  })

  it('stays whole without its most-connected node', async () => {
    const { nodes } = await startMesh(8)
    const hub = nodes.reduce((a, b) => (b.peers().length > a.peers().length ? b : a))
    const degree = nodes.map((n) => n.peers().length)
    const rest = nodes.filter((n) => n !== hub)
    await hub.stop()
    await waitFor(() => rest.every((n) => !n.peers().includes(hub.address)), 'everyone to notice the hub left')
    expect(components(rest)).toBe(1)
    // Published by the node that had the fewest links, the one most likely to be cut off.
    const weakest = rest.reduce((a, b) => (b.peers().length < a.peers().length ? b : a))
    const ms = await reachesAll(weakest, rest, 1)
    report(
      `8 nodes (peers per node ${degree.join(',')}), hub (${nodes.indexOf(hub) < 2 ? 'a bootstrap node' : 'not a bootstrap node'}) with ${degree[nodes.indexOf(hub)]} links stopped: advert from a node with ${weakest.peers().length} links reached the other ${rest.length - 1} in ${ms} ms`,
    )
  })
})

/** 2 bootstrap nodes and n-2 others, each handed both bootstrap addresses. */
async function startMesh(n: number): Promise<{ nodes: MeshNode[]; b1: MeshNode; b2: MeshNode }> {
  const b1 = await startNode(started)
  const b2 = await startNode(started, { bootstrap: b1.multiaddrs() })
  const list = [...b1.multiaddrs(), ...b2.multiaddrs()]
  const others = await Promise.all(Array.from({ length: n - 2 }, () => startNode(started, { bootstrap: list })))
  const boot = new Set<Address>([b1.address, b2.address])
  await waitFor(
    () => others.every((o) => o.peers().some((p) => !boot.has(p))),
    'links beyond the bootstrap nodes',
    15_000,
  )
  const nodes = [b1, b2, ...others]
  // The gossip mesh is formed once one advert gets everywhere.
  await reachesAll(others[0] as MeshNode, nodes, 0, 10_000)
  return { nodes, b1, b2 }
}

/** How many connected pieces the nodes' links make (1: the mesh is whole). */
function components(nodes: MeshNode[]): number {
  const byAddr = new Map(nodes.map((n) => [n.address, n]))
  const seen = new Set<Address>()
  let count = 0
  for (const n of nodes) {
    if (seen.has(n.address)) continue
    count++
    const queue = [n]
    seen.add(n.address)
    for (let cur = queue.pop(); cur !== undefined; cur = queue.pop()) {
      for (const p of cur.peers()) {
        const next = byAddr.get(p)
        if (next !== undefined && !seen.has(p)) {
          seen.add(p)
          queue.push(next)
        }
      }
    }
  }
  return count
}

/**
 * Publishes one advert (sequence `seq`, once: no retries) from `from` and waits until every
 * other node in `nodes` delivered it. Returns the time until the last one did.
 */
async function reachesAll(from: MeshNode, nodes: MeshNode[], seq: number, timeoutMs = 5_000): Promise<number> {
  const waiting = new Set(nodes.filter((n) => n !== from).map((n) => n.address))
  const offs = nodes.map((n) =>
    n.onAdvert((ev) => {
      if (ev.signer === from.address && ev.advert.seq === seq) waiting.delete(n.address)
    }),
  )
  const t = Date.now()
  try {
    await from.publishAdvert(sampleAdvert(from, seq))
    await waitFor(() => waiting.size === 0, `advert ${seq} at ${waiting.size} more node(s)`, timeoutMs)
    return Date.now() - t
  } finally {
    for (const off of offs) off()
  }
}
