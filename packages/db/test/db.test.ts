import { describe, expect, it } from 'vitest'
import { eq, jobs, openDb } from '../src/index.ts'

describe('openDb (embedded PGlite)', () => {
  it('migrates a fresh database and round-trips a job row', async () => {
    const { db, close, kind } = await openDb()
    try {
      expect(kind).toBe('pglite')
      const now = Date.now()
      await db.insert(jobs).values({
        id: 'job_0000000000test',
        client: 'c',
        spec: { image: 'kiln/x:1' } as never,
        submitEnvelope: {} as never,
        state: 'queued',
        maxCost: 10,
        createdAt: now,
        updatedAt: now,
      })
      const [row] = await db.select().from(jobs).where(eq(jobs.id, 'job_0000000000test'))
      expect(row?.state).toBe('queued')
      expect(row?.createdAt).toBe(now)
    } finally {
      await close()
    }
  })
})
