import type { PeerId } from '@libp2p/interface'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'

/** Multicodec of /p2p/; the peer store keeps transport addresses without it. */
const P2P_CODE = 421

/** The PeerId named by a multiaddr's last /p2p/ component, if any. */
export function namedPeer(addr: string): string | undefined {
  try {
    return multiaddr(addr)
      .getComponents()
      .findLast((c) => c.name === 'p2p')?.value
  } catch {
    return undefined
  }
}

/** Keeps the addresses that can reach `peer`: valid multiaddrs naming no other peer. */
export function parseAddrs(addrs: string[], peer: PeerId): Multiaddr[] {
  const out: Multiaddr[] = []
  for (const a of addrs) {
    try {
      const ma = multiaddr(a)
      const named = ma.getComponents().findLast((c) => c.name === 'p2p')?.value
      if (named === undefined || named === peer.toString()) out.push(ma.decapsulateCode(P2P_CODE))
    } catch {
      // An advert's addrs come from the network; a bad one is skipped, not fatal.
    }
  }
  return out
}
