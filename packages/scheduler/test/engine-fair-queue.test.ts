import { describe, expect, it } from 'vitest'
import { createFairQueue, type FairItem } from '../src/index.ts'

describe('createFairQueue', () => {
  it('a flood of 1000 jobs from one client does not delay another client\'s single job', () => {
    const q = createFairQueue<FairItem>()
    for (let i = 0; i < 1000; i++) q.push({ id: `a${i}`, client: 'A' })
    q.push({ id: 'b0', client: 'B' })
    expect(q.position('b0')).toBeLessThanOrEqual(1)
    const order = drain(q)
    expect(order.indexOf('b0')).toBeLessThanOrEqual(1)
    expect(order).toHaveLength(1001)
  })

  it('serves clients in turn, and by priority then arrival within a client', () => {
    const q = createFairQueue<FairItem>()
    q.push({ id: 'a1', client: 'A' })
    q.push({ id: 'a2', client: 'A' })
    q.push({ id: 'a3', client: 'A', priority: 5 })
    q.push({ id: 'b1', client: 'B' })
    q.push({ id: 'c1', client: 'C' })
    expect(drain(q)).toEqual(['a3', 'b1', 'c1', 'a1', 'a2'])
  })

  it('predicts each job\'s position exactly when nothing else arrives', () => {
    const q = createFairQueue<FairItem>()
    const clients = ['A', 'A', 'B', 'A', 'C', 'C', 'B', 'A', 'D', 'A', 'C']
    clients.forEach((client, i) => q.push({ id: `j${i}`, client, priority: i % 4 === 0 ? 1 : 0 }))
    q.pop() // move the cursor off the first client
    q.remove('j5')
    const predicted = new Map(clients.map((_, i) => [`j${i}`, q.position(`j${i}`)]))
    const order = drain(q)
    for (const [id, pos] of predicted) expect(pos === undefined ? undefined : order[pos]).toBe(pos === undefined ? undefined : id)
    expect(predicted.get('j5')).toBeUndefined()
  })

  it('a job put back after a failed placement keeps its place in its client\'s queue', () => {
    const q = createFairQueue<FairItem>()
    for (const id of ['a1', 'a2']) q.push({ id, client: 'A' })
    q.push({ id: 'b1', client: 'B' })
    const first = q.pop()!
    expect(first.id).toBe('a1')
    q.restore(first)
    expect(drain(q)).toEqual(['b1', 'a1', 'a2'])
  })

  it('with global priorities, serves the highest class first and clients in turn inside each', () => {
    const q = createFairQueue<FairItem>({ priority: 'global' })
    for (let i = 0; i < 3; i++) q.push({ id: `a${i}`, client: 'A' })
    q.push({ id: 'b-urgent', client: 'B', priority: 5 })
    q.push({ id: 'c0', client: 'C' })
    q.push({ id: 'a-urgent', client: 'A', priority: 5 })
    expect(q.clients).toBe(3)
    const predicted = ['a0', 'a1', 'a2', 'b-urgent', 'c0', 'a-urgent'].map((id) => [id, q.position(id)] as const)
    q.remove('a1')
    expect(q.position('a2')).toBe(4)
    const order = drain(q)
    expect(order).toEqual(['b-urgent', 'a-urgent', 'a0', 'c0', 'a2'])
    for (const id of ['b-urgent', 'a-urgent', 'a0', 'c0']) expect(predicted.find(([x]) => x === id)?.[1]).toBe(order.indexOf(id))
    expect(q.size).toBe(0)
    expect(q.clients).toBe(0)
  })

  it('estimates the wait from the moving average of dispatch intervals', () => {
    const q = createFairQueue<FairItem>({ alpha: 0.5 })
    for (let i = 0; i < 5; i++) q.push({ id: `a${i}`, client: 'A' })
    expect(q.estimatedWaitMs('a4')).toBeUndefined()
    q.recordDispatch(1000)
    q.recordDispatch(1100)
    q.recordDispatch(1300)
    // Intervals 100 then 200: average 150 ms; a4 has 4 jobs ahead, so it goes 5th.
    expect(q.estimatedWaitMs('a4')).toBe(750)
    expect(q.estimatedWaitMs('nope')).toBeUndefined()
  })
})

function drain(q: ReturnType<typeof createFairQueue<FairItem>>): string[] {
  const out: string[] = []
  for (let item = q.pop(); item; item = q.pop()) out.push(item.id)
  return out
}
