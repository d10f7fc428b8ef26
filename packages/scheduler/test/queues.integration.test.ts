import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRedis, type RedisServer } from '../../../test/support/redis.ts'
import { createLifecycleQueues, type LifecycleHandlers } from '../src/index.ts'

describe('lifecycle queues (real Redis)', () => {
  let redis: RedisServer
  beforeAll(async () => {
    redis = await startRedis()
  })
  afterAll(async () => {
    await redis?.stop()
  })

  it('parks a task that cannot proceed yet and runs it again later, without dropping it', async () => {
    const q = createLifecycleQueues({ connection: { host: '127.0.0.1', port: redis.port }, prefix: 'test1' })
    const seen: number[] = []
    let finished!: () => void
    const done = new Promise<void>((r) => {
      finished = r
    })
    const handlers: LifecycleHandlers = {
      async dispatch() {
        seen.push(Date.now())
        if (seen.length < 3) return { retryInMs: 100 }
        finished()
        return { done: true }
      },
      async 'lock-timeout'() {
        return { done: true }
      },
      async settle() {
        return { done: true }
      },
    }
    await q.start(handlers)
    try {
      await q.enqueue('dispatch', 'job_abc0000000001')
      await done
      expect(seen).toHaveLength(3)
      expect(seen[2]! - seen[0]!).toBeGreaterThanOrEqual(150)
    } finally {
      await q.stop()
    }
  })

  it('dedupes the same task for the same job', async () => {
    const q = createLifecycleQueues({ connection: { host: '127.0.0.1', port: redis.port }, prefix: 'test2' })
    try {
      await q.enqueue('settle', 'job_abc0000000002', { delayMs: 60_000 })
      await q.enqueue('settle', 'job_abc0000000002', { delayMs: 60_000 })
      expect((await q.counts()).delayed).toBe(1)
    } finally {
      await q.stop()
    }
  })
})
