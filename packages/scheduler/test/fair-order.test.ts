import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { fairOrder, type Queued } from '../src/fair-order.ts'

const job = (id: string, client: string, createdAt: number, priority = 0): Queued => ({
  id,
  client,
  priority,
  createdAt,
})
const ids = (jobs: readonly Queued[]) => jobs.map((j) => j.id)

describe('fairOrder', () => {
  it('lets a client with one job go second even behind a flood from another', () => {
    const flood = Array.from({ length: 1000 }, (_, i) => ({ id: `a${i}`, client: 'A', priority: 0, createdAt: i }))
    const order = fairOrder([...flood, { id: 'b0', client: 'B', priority: 0, createdAt: 5000 }])
    expect(order.findIndex((j) => j.id === 'b0')).toBe(1)
    expect(order).toHaveLength(1001)
  })

  it("serves higher priority first, and keeps each client's own order", () => {
    const order = fairOrder([
      { id: 'a1', client: 'A', priority: 0, createdAt: 1 },
      { id: 'a2', client: 'A', priority: 0, createdAt: 2 },
      { id: 'b1', client: 'B', priority: 5, createdAt: 3 },
      { id: 'c1', client: 'C', priority: 0, createdAt: 0 },
    ])
    expect(order.map((j) => j.id)).toEqual(['b1', 'c1', 'a1', 'a2'])
  })

  it('serves clients in turn, round after round, in the order of their oldest job', () => {
    const order = fairOrder([
      job('a0', 'A', 0),
      job('a1', 'A', 1),
      job('a2', 'A', 2),
      job('b0', 'B', 3),
      job('c0', 'C', 4),
      job('c1', 'C', 5),
    ])
    expect(ids(order)).toEqual(['a0', 'b0', 'c0', 'a1', 'c1', 'a2'])
  })

  it("a job no provider took in one pass keeps its client's first turn in the next", () => {
    const queued = [job('a1', 'A', 1), job('a2', 'A', 2), job('b1', 'B', 3)]
    expect(ids(fairOrder(queued))).toEqual(['a1', 'b1', 'a2'])
    // b1 was placed, a1 fitted nowhere: a1 still goes before a2.
    expect(ids(fairOrder(queued.filter((j) => j.id !== 'b1')))).toEqual(['a1', 'a2'])
  })

  it('serves the highest priority class first, with clients taking turns inside each', () => {
    const queued = [
      job('a0', 'A', 0),
      job('a1', 'A', 1),
      job('a2', 'A', 2),
      job('b-urgent', 'B', 3, 5),
      job('c0', 'C', 4),
      job('a-urgent', 'A', 5, 5),
    ]
    expect(ids(fairOrder(queued))).toEqual(['b-urgent', 'a-urgent', 'a0', 'c0', 'a1', 'a2'])
    expect(ids(fairOrder(queued.filter((j) => j.id !== 'a1')))).toEqual(['b-urgent', 'a-urgent', 'a0', 'c0', 'a2'])
  })

  it('is a permutation in which no client gets a second turn in a class before another waiting client got one', () => {
    const queued = fc.uniqueArray(
      fc.record({
        client: fc.constantFrom('A', 'B', 'C', 'D'),
        priority: fc.integer({ min: 0, max: 2 }),
        createdAt: fc.integer({ min: 0, max: 50 }),
        id: fc.string({ minLength: 1, maxLength: 6 }),
      }),
      { selector: (j) => j.id, maxLength: 60 },
    )
    fc.assert(
      fc.property(queued, (jobs) => {
        const order = fairOrder(jobs)
        expect([...ids(order)].sort()).toEqual([...ids(jobs)].sort())
        for (let i = 1; i < order.length; i++) expect(order[i]!.priority).toBeLessThanOrEqual(order[i - 1]!.priority)
        for (const p of new Set(jobs.map((j) => j.priority))) {
          const inClass = order.filter((j) => j.priority === p)
          const total = new Map<string, number>()
          for (const j of inClass) total.set(j.client, (total.get(j.client) ?? 0) + 1)
          const served = new Map<string, number>()
          const last = new Map<string, number>()
          for (const j of inClass) {
            const mine = served.get(j.client) ?? 0
            // Every client that still has jobs in this class has had as many turns as this one.
            for (const [c, n] of total)
              if (c !== j.client && (served.get(c) ?? 0) < Math.min(n, mine))
                throw new Error(`${c} waits while ${j.client} gets turn ${mine + 1}`)
            // A client's own jobs go oldest first.
            expect(j.createdAt).toBeGreaterThanOrEqual(last.get(j.client) ?? -Infinity)
            last.set(j.client, j.createdAt)
            served.set(j.client, mine + 1)
          }
        }
      }),
    )
  })
})
