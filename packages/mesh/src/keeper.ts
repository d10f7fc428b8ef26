import type { PeerId } from '@libp2p/interface'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { namedPeer } from './addrs.ts'
import type { KilnLibp2p } from './libp2p.ts'
import type { Logger } from '@kiln/protocol'

/** Discovered peers are dialled while we have fewer connections than this. */
const DIAL_DISCOVERED_BELOW = 16
/** Below this many peers every bootstrap entry is dialled on every round, backoff or not. */
const MIN_PEERS = 4
const MAINTAIN_EVERY_MS = 3_000
/** A bootstrap entry that keeps failing is tried at most this rarely (while we have peers). */
const MAX_BACKOFF_MS = 60_000
/**
 * A lost bootstrap peer is first re-dialled after a random delay in this range, not at the
 * next round: a restarted marketplace is back in under two seconds, and its providers do not
 * all dial it in the same instant.
 */
const REDIAL_MIN_MS = 300
const REDIAL_JITTER_MS = 1_200

/**
 * Keeps a node connected. Dialling what the DHT discovers is what turns a star around the
 * bootstrap nodes into a mesh. Bootstrap nodes are the ones everybody can find again, so a
 * lost one is re-dialled even while we have other peers: a restarted marketplace (which has no
 * bootstrap list of its own) is back in the mesh, with every provider connected to it, within
 * a second or two. Each entry backs off on its own, so a dead one is not hammered.
 */
export class PeerKeeper {
  readonly #node: KilnLibp2p
  readonly #self: PeerId
  readonly #bootstrap: string[]
  readonly #log: Logger
  readonly #dialling = new Set<string>()
  readonly #backoff = new Map<string, { next: number; delay: number }>()
  #timer: ReturnType<typeof setInterval> | undefined
  readonly #onDiscovery = (evt: CustomEvent<{ id: PeerId }>): void => this.#dialDiscovered(evt.detail.id)
  readonly #onDisconnect = (evt: CustomEvent<PeerId>): void => this.#lost(evt.detail)
  readonly #redials = new Set<ReturnType<typeof setTimeout>>()

  constructor(node: KilnLibp2p, self: PeerId, bootstrap: string[], log: Logger) {
    this.#node = node
    this.#self = self
    this.#bootstrap = bootstrap
    this.#log = log
  }

  start(): void {
    this.#node.addEventListener('peer:discovery', this.#onDiscovery)
    this.#node.addEventListener('peer:disconnect', this.#onDisconnect)
    this.#timer = setInterval(() => this.#maintain(), MAINTAIN_EVERY_MS)
    this.#timer.unref()
  }

  stop(): void {
    this.#node.removeEventListener('peer:discovery', this.#onDiscovery)
    this.#node.removeEventListener('peer:disconnect', this.#onDisconnect)
    if (this.#timer !== undefined) clearInterval(this.#timer)
    this.#timer = undefined
    for (const t of this.#redials) clearTimeout(t)
    this.#redials.clear()
  }

  #lost(peer: PeerId): void {
    const entries = this.#bootstrap.filter((a) => namedPeer(a) === peer.toString())
    if (this.#timer === undefined || entries.length === 0) return
    const t = setTimeout(
      () => {
        this.#redials.delete(t)
        if (this.#timer === undefined || this.#node.getConnections(peer).length > 0) return
        for (const a of entries) this.#tryBootstrap(a)
      },
      REDIAL_MIN_MS + Math.random() * REDIAL_JITTER_MS,
    )
    t.unref()
    this.#redials.add(t)
  }

  #dialDiscovered(peer: PeerId): void {
    const node = this.#node
    if (this.#timer === undefined || peer.equals(this.#self)) return
    if (node.getConnections(peer).length > 0 || node.getConnections().length >= DIAL_DISCOVERED_BELOW) return
    void this.#dial(peer)
  }

  /** Resolves whether the dial succeeded; undefined if one to the same target is under way. */
  async #dial(target: PeerId | Multiaddr): Promise<boolean | undefined> {
    const key = target.toString()
    if (this.#dialling.has(key)) return undefined
    this.#dialling.add(key)
    try {
      await this.#node.dial(target)
      return true
    } catch (err) {
      // Info, not warn: stale addresses from the DHT make failed dials routine.
      this.#log.info({ peer: key, err: (err as Error).message }, 'dial failed')
      return false
    } finally {
      this.#dialling.delete(key)
    }
  }

  #maintain(): void {
    if (this.#timer === undefined) return
    const now = Date.now()
    const connected = new Set(this.#node.getPeers().map((p) => p.toString()))
    const few = connected.size < MIN_PEERS
    for (const a of this.#bootstrap) {
      const id = namedPeer(a)
      if (id !== undefined && connected.has(id)) {
        this.#backoff.delete(a)
        continue
      }
      const b = this.#backoff.get(a)
      if (!few && b !== undefined && b.next > now) continue
      this.#tryBootstrap(a)
    }
  }

  #tryBootstrap(a: string): void {
    // Parses: MeshNode checked every entry before it got here.
    void this.#dial(multiaddr(a)).then((ok) => {
      if (ok === undefined) return
      if (ok) {
        this.#backoff.delete(a)
        return
      }
      const delay = Math.min(MAX_BACKOFF_MS, (this.#backoff.get(a)?.delay ?? MAINTAIN_EVERY_MS / 2) * 2)
      this.#backoff.set(a, { next: Date.now() + delay, delay })
    })
  }
}
