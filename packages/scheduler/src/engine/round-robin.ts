export interface FairItem {
  readonly id: string
  readonly client: string
  /** Higher goes first; default 0. See FairQueueInit.priority for whose jobs it goes before. */
  readonly priority?: number
}

/** A fair queue without the wait estimate. */
export interface Core<T extends FairItem> {
  readonly size: number
  /** Clients with pending jobs. */
  readonly clients: number
  /** False when a job with this id is already queued. */
  push(item: T): boolean
  /** The next job in fair order, removed from the queue. */
  pop(): T | undefined
  /**
   * Puts a popped job back at the head of its client's queue, e.g. when no provider fits it
   * yet. Its client has used its turn for this round.
   */
  restore(item: T): void
  remove(id: string): boolean
  has(id: string): boolean
  /** How many jobs will be dispatched before this one if nothing else arrives (0 = next). */
  position(id: string): number | undefined
}

interface Entry<T> {
  item: T
  live: boolean
  lane: Lane<T>
}

/** One priority level of one client: a deque with lazy deletion. */
interface Lane<T> {
  prio: number
  items: Entry<T>[]
  head: number
  live: number
}

interface ClientQueue<T> {
  client: string
  /** Sorted by priority, highest first. */
  lanes: Lane<T>[]
  live: number
}

export type RoundRobin<T extends FairItem> = Core<T> & { clientOf(id: string): string | undefined }

/**
 * Clients take turns (one job each per round, newcomers at the end of the current round);
 * within a client, higher priority first, then arrival. Removal is lazy, so every operation
 * but `position` is O(1) amortised.
 */
export function createRoundRobin<T extends FairItem>(): RoundRobin<T> {
  const entries = new Map<string, Entry<T>>()
  const clients = new Map<string, ClientQueue<T>>()
  // Clients with pending jobs in serving order; `cursor` is whose turn is next.
  const ring: ClientQueue<T>[] = []
  let cursor = 0

  const clientOf = (client: string): ClientQueue<T> => {
    let c = clients.get(client)
    if (!c) clients.set(client, (c = { client, lanes: [], live: 0 }))
    if (c.live === 0) {
      // A newcomer waits for the end of the current round, so leaving and rejoining gains nothing.
      ring.splice(cursor, 0, c)
      if (ring.length > 1) cursor++
    }
    return c
  }

  const laneOf = (c: ClientQueue<T>, prio: number): Lane<T> => {
    let i = 0
    while (i < c.lanes.length && c.lanes[i]!.prio > prio) i++
    const found = c.lanes[i]
    if (found && found.prio === prio) return found
    const lane: Lane<T> = { prio, items: [], head: 0, live: 0 }
    c.lanes.splice(i, 0, lane)
    return lane
  }

  const dropFromRing = (c: ClientQueue<T>) => {
    const i = ring.indexOf(c)
    ring.splice(i, 1)
    if (i < cursor) cursor--
    if (cursor >= ring.length) cursor = 0
    clients.delete(c.client)
  }

  const takeFirst = (c: ClientQueue<T>): Entry<T> => {
    for (const lane of c.lanes) {
      if (lane.live === 0) continue
      while (!lane.items[lane.head]!.live) lane.head++
      const e = lane.items[lane.head++]!
      // Compact now and then so a long-lived lane does not keep every popped entry.
      if (lane.head > 1024 && lane.head * 2 > lane.items.length) { lane.items = lane.items.slice(lane.head); lane.head = 0 }
      return e
    }
    throw new Error('fair queue: client in ring without live entries')
  }

  const settle = (e: Entry<T>) => {
    e.live = false
    e.lane.live--
    entries.delete(e.item.id)
    const c = clients.get(e.item.client)!
    c.live--
    return c
  }

  /** Jobs ahead of `e` within its own client. */
  const rankInClient = (e: Entry<T>): number => {
    const c = clients.get(e.item.client)!
    let k = 0
    for (const lane of c.lanes) {
      if (lane === e.lane) break
      k += lane.live
    }
    for (let i = e.lane.head; i < e.lane.items.length; i++) {
      const x = e.lane.items[i]!
      if (x === e) break
      if (x.live) k++
    }
    return k
  }

  const position = (id: string): number | undefined => {
    const e = entries.get(id)
    if (!e) return undefined
    const own = clients.get(e.item.client)!
    const k = rankInClient(e)
    // Round r serves one job from every client with more than r left, in ring order from the cursor.
    let ahead = 0
    let before = true
    for (let i = 0; i < ring.length; i++) {
      const c = ring[(cursor + i) % ring.length]!
      if (c === own) { before = false; ahead += k; continue }
      ahead += Math.min(c.live, k) + (before && c.live > k ? 1 : 0)
    }
    return ahead
  }

  return {
    get size() { return entries.size },
    get clients() { return ring.length },
    push(item) {
      if (entries.has(item.id)) return false
      const c = clientOf(item.client)
      const lane = laneOf(c, item.priority ?? 0)
      const e: Entry<T> = { item, live: true, lane }
      lane.items.push(e)
      lane.live++
      c.live++
      entries.set(item.id, e)
      return true
    },
    pop() {
      if (ring.length === 0) return undefined
      const c = ring[cursor]!
      const e = takeFirst(c)
      settle(e)
      if (c.live === 0) dropFromRing(c)
      else cursor = (cursor + 1) % ring.length
      return e.item
    },
    restore(item) {
      if (entries.has(item.id)) return
      const c = clientOf(item.client)
      const lane = laneOf(c, item.priority ?? 0)
      const e: Entry<T> = { item, live: true, lane }
      if (lane.head > 0) lane.items[--lane.head] = e
      else lane.items.unshift(e)
      lane.live++
      c.live++
      entries.set(item.id, e)
    },
    remove(id) {
      const e = entries.get(id)
      if (!e) return false
      const c = settle(e)
      if (c.live === 0) dropFromRing(c)
      return true
    },
    has: (id) => entries.has(id),
    position,
    clientOf: (id) => entries.get(id)?.item.client,
  }
}
