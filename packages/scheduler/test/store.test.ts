import { describe, expect, it } from 'vitest'
import { openDb } from '@kiln/db'
import { createJobStore, newJobId, type JobStore } from '../src/index.ts'

describe('JobStore (PGlite)', () => {
  it('moves a job through legal transitions once, recording each event', async () => {
    const { store, close, create } = await setup()
    try {
      const job = await create()
      expect(job.state).toBe('queued')
      const matched = await store.transition(job.id, ['queued'], 'matched', 'placed', { provider: 'p1' })
      expect(matched?.state).toBe('matched')
      expect(matched?.version).toBe(1)
      // A second, concurrent attempt at the same step finds the job moved and does nothing.
      expect(await store.transition(job.id, ['queued'], 'matched', 'placed again')).toBeUndefined()
      const events = await store.events(job.id)
      expect(events.map((e) => `${e.from ?? '-'}>${e.to}`)).toEqual(['->queued', 'queued>matched'])
    } finally {
      await close()
    }
  })

  it('stores whatever a job printed, a NUL byte included (shown as U+FFFD)', async () => {
    const { store, close, create } = await setup()
    try {
      const job = await create()
      await store.appendLogs(job.id, 0, [
        { stream: 'stdout', text: 'before\u0000after\n' },
        { stream: 'stderr', text: 'plain' },
      ])
      expect((await store.logs(job.id, -1)).map((l) => l.text)).toEqual(['before\uFFFDafter\n', 'plain'])
    } finally {
      await close()
    }
  })

  it('refuses an illegal transition outright', async () => {
    const { store, close, create } = await setup()
    try {
      const job = await create()
      await expect(store.transition(job.id, ['queued'], 'done', 'skip ahead')).rejects.toThrow(/no legal transition/)
      // One illegal source among legal ones is refused too, rather than silently skipped.
      await expect(store.transition(job.id, ['queued', 'done'], 'matched', 'mixed')).rejects.toThrow(
        /from done to matched/,
      )
      expect((await store.get(job.id))?.state).toBe('queued')
    } finally {
      await close()
    }
  })

  it('races of many writers on one transition: exactly one wins', async () => {
    const { store, close, create } = await setup()
    try {
      const job = await create()
      const results = await Promise.all(
        Array.from({ length: 8 }, (_, i) => store.transition(job.id, ['queued'], 'matched', `writer ${i}`)),
      )
      expect(results.filter(Boolean)).toHaveLength(1)
    } finally {
      await close()
    }
  })

  it('keeps log chunks in order and dedupes re-sent chunks', async () => {
    const { store, close, create } = await setup()
    try {
      const job = await create()
      await store.appendLogs(job.id, 0, [
        { stream: 'stdout', text: 'a' },
        { stream: 'stdout', text: 'b' },
      ])
      await store.appendLogs(job.id, 1, [
        { stream: 'stdout', text: 'b' },
        { stream: 'stderr', text: 'c' },
      ])
      expect((await store.logs(job.id, -1)).map((l) => l.text)).toEqual(['a', 'b', 'c'])
      expect((await store.logs(job.id, 1)).map((l) => l.text)).toEqual(['c'])
    } finally {
      await close()
    }
  })
})

async function setup() {
  const { db, close } = await openDb()
  const store = createJobStore(db)
  const create = () =>
    store.create({
      id: newJobId(),
      client: 'c',
      spec: { image: 'x' } as never,
      submitEnvelope: {} as never,
      maxCost: 1,
    })
  return { store, close, create }
}

/** A spot-checked job of alice's with its hidden re-run. */
async function spotChecked(store: JobStore) {
  const id = newJobId()
  const common = { client: 'alice', spec: { image: 'x' } as never, submitEnvelope: {} as never, maxCost: 10 }
  await store.create({ id, ...common, spotCheck: true }, [{ id: `${id}r1`, parentId: id, role: 'replica', ...common }])
  return { id, common }
}

describe('JobStore.reservedFor', () => {
  it("sums the maximum cost of a client's jobs that are not locked yet", async () => {
    const { db, close } = await openDb()
    const store = createJobStore(db)
    try {
      const mk = (client: string, maxCost: number) =>
        store.create({ id: newJobId(), client, spec: { image: 'x' } as never, submitEnvelope: {} as never, maxCost })
      const a = await mk('alice', 100)
      await mk('alice', 50)
      await mk('bob', 7)
      expect(await store.reservedFor('alice')).toBe(150)
      await store.transition(a.id, ['queued'], 'matched', 'placed')
      expect(await store.reservedFor('alice')).toBe(150)
      await store.transition(a.id, ['matched'], 'locked', 'locked')
      expect(await store.reservedFor('alice')).toBe(50)
      expect(await store.reservedFor('carol')).toBe(0)
    } finally {
      await close()
    }
  })
})

describe('JobStore runs (spot-check re-runs and tie-breaks)', () => {
  it("keeps a job's runs out of job lists, shows them in its family, and adds a tie-break once", async () => {
    const { store, close } = await setup()
    try {
      const { id, common } = await spotChecked(store)
      expect((await store.list()).map((j) => j.id)).toEqual([id])
      expect((await store.list({ runs: 'only' })).map((j) => j.id)).toEqual([`${id}r1`])
      expect(new Set((await store.list({ runs: true })).map((j) => j.id))).toEqual(new Set([id, `${id}r1`]))
      // The re-run's money is reserved like the job's own.
      expect(await store.reservedFor('alice')).toBe(20)
      const tie = { id: `${id}t1`, parentId: id, role: 'tiebreak' as const, ...common }
      expect((await store.addRun(tie, 'tie-break'))?.state).toBe('queued')
      expect(await store.addRun(tie, 'tie-break again')).toBeUndefined()
      expect((await store.family(id)).map((j) => j.role)).toEqual(['primary', 'replica', 'tiebreak'])
      expect(await store.events(`${id}t1`)).toHaveLength(1)
    } finally {
      await close()
    }
  })
})

describe('JobStore.unpark (a job its owner did not lock, parked until the owner is back)', () => {
  it("clears the family's lapses and parking durably, records it once per parked run, and is a no-op when nothing is parked", async () => {
    const { store, close } = await setup()
    try {
      const { id, common } = await spotChecked(store)
      const other = newJobId()
      await store.create({ id: other, ...common })
      await store.update(id, { lapses: 3, parkedAt: 1_000 })
      await store.update(`${id}r1`, { lapses: 1 })
      await store.update(other, { lapses: 3, parkedAt: 1_000 })
      expect((await store.queued()).find((q) => q.id === id)?.parkedAt).toBe(1_000)

      expect(await store.unpark(id, 'the owner came back')).toEqual([id])
      expect(await store.get(id)).toMatchObject({ lapses: 0, parkedAt: null, state: 'queued' })
      expect(await store.get(`${id}r1`)).toMatchObject({ lapses: 0, parkedAt: null })
      expect((await store.events(id)).at(-1)).toMatchObject({
        from: 'queued',
        to: 'queued',
        reason: 'the owner came back',
      })
      // Another job of the same owner stays parked until its own owner's read.
      expect((await store.get(other))?.parkedAt).toBe(1_000)
      expect(await store.unpark(id, 'again')).toEqual([])
      expect(await store.events(id)).toHaveLength(2)
    } finally {
      await close()
    }
  })
})
