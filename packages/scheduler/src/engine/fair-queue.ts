import { createRoundRobin, type Core, type FairItem, type RoundRobin } from './round-robin.ts'

export type { FairItem }

export interface FairQueueInit {
  /** Whether priority orders only a client's own jobs, or all jobs (default `within-client`). */
  priority?: 'within-client' | 'global'
  /** Weight of the newest interval in the moving average of dispatch intervals (0..1]. */
  alpha?: number
}

/**
 * Pending jobs, served round-robin between clients, so that a flood from one client cannot
 * starve the others. Priorities order a client's own jobs (`within-client`, the default: no
 * client can jump the others' turns), or form classes served highest first with clients
 * taking turns inside each (`global`, as JobSpec.priority describes it). Pure: time comes in
 * as arguments, which is what the wait estimate is built from.
 */
export interface FairQueue<T extends FairItem> extends Core<T> {
  /** Position times the moving average of the time between dispatches; undefined until known. */
  estimatedWaitMs(id: string): number | undefined
  /** A job from this queue was placed at `at` (ms). Feeds the wait estimate. */
  recordDispatch(at: number): void
}

export function createFairQueue<T extends FairItem>(init: FairQueueInit = {}): FairQueue<T> {
  const alpha = init.alpha ?? 0.2
  const core = init.priority === 'global' ? createClasses<T>() : createRoundRobin<T>()
  let lastDispatch: number | undefined
  let interval: number | undefined
  return {
    get size() { return core.size },
    get clients() { return core.clients },
    push: (item) => core.push(item),
    pop: () => core.pop(),
    restore: (item) => core.restore(item),
    remove: (id) => core.remove(id),
    has: (id) => core.has(id),
    position: (id) => core.position(id),
    estimatedWaitMs(id) {
      const p = core.position(id)
      return p === undefined || interval === undefined ? undefined : (p + 1) * interval
    },
    recordDispatch(at) {
      if (lastDispatch !== undefined) {
        const dt = Math.max(0, at - lastDispatch)
        interval = interval === undefined ? dt : interval + alpha * (dt - interval)
      }
      lastDispatch = at
    },
  }
}

/** Global priority classes: the highest non-empty class is served first, round-robin inside it. */
function createClasses<T extends FairItem>(): Core<T> {
  const classes = new Map<number, RoundRobin<T>>()
  let order: number[] = []
  const classOf = new Map<string, number>()
  const perClient = new Map<string, number>()
  const count = (client: string, d: number) => {
    const n = (perClient.get(client) ?? 0) + d
    if (n === 0) perClient.delete(client)
    else perClient.set(client, n)
  }
  const get = (p: number) => {
    let c = classes.get(p)
    if (!c) {
      classes.set(p, (c = createRoundRobin<T>()))
      order = [...classes.keys()].sort((a, b) => b - a)
    }
    return c
  }
  const add = (item: T, put: (c: RoundRobin<T>) => void) => {
    const p = item.priority ?? 0
    put(get(p))
    classOf.set(item.id, p)
    count(item.client, 1)
  }
  return {
    get size() { return classOf.size },
    get clients() { return perClient.size },
    push(item) {
      if (classOf.has(item.id)) return false
      add(item, (c) => c.push(item))
      return true
    },
    pop() {
      for (const p of order) {
        const item = classes.get(p)!.pop()
        if (!item) continue
        classOf.delete(item.id)
        count(item.client, -1)
        return item
      }
      return undefined
    },
    restore(item) {
      if (!classOf.has(item.id)) add(item, (c) => c.restore(item))
    },
    remove(id) {
      const p = classOf.get(id)
      const c = p === undefined ? undefined : classes.get(p)
      const client = c?.clientOf(id)
      if (!c || client === undefined) return false
      c.remove(id)
      classOf.delete(id)
      count(client, -1)
      return true
    },
    has: (id) => classOf.has(id),
    position(id) {
      const p = classOf.get(id)
      if (p === undefined) return undefined
      let ahead = 0
      for (const q of order) {
        if (q === p) break
        ahead += classes.get(q)!.size
      }
      const inClass = classes.get(p)!.position(id)
      return inClass === undefined ? undefined : ahead + inClass
    },
  }
}

