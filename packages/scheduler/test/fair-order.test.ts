import { describe, expect, it } from 'vitest'
import { fairOrder } from '../src/fair-order.ts'

describe('fairOrder', () => {
  it('lets a client with one job go second even behind a flood from another', () => {
    const flood = Array.from({ length: 1000 }, (_, i) => ({ id: `a${i}`, client: 'A', priority: 0, createdAt: i }))
    const order = fairOrder([...flood, { id: 'b0', client: 'B', priority: 0, createdAt: 5000 }])
    expect(order.findIndex((j) => j.id === 'b0')).toBe(1)
    expect(order).toHaveLength(1001)
  })

  it('serves higher priority first, and keeps each client\'s own order', () => {
    const order = fairOrder([
      { id: 'a1', client: 'A', priority: 0, createdAt: 1 },
      { id: 'a2', client: 'A', priority: 0, createdAt: 2 },
      { id: 'b1', client: 'B', priority: 5, createdAt: 3 },
      { id: 'c1', client: 'C', priority: 0, createdAt: 0 },
    ])
    expect(order.map((j) => j.id)).toEqual(['b1', 'c1', 'a1', 'a2'])
  })
})
