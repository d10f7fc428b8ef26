import { describe, expect, it } from 'vitest'
import { Identity, JobSpec, escrowIdFor, type Lease } from '@kiln/protocol'
import { createSlot } from '../src/slot.ts'

describe('job slot', () => {
  it("goes idle → leased → running → idle, and the run's `done` resolves when it is released", async () => {
    const { slot, lease } = setup()
    expect(slot.get()).toEqual({ kind: 'idle' })
    expect(slot.jobId()).toBeUndefined()
    slot.lease(lease.jobId)
    expect(slot.get()).toEqual({ kind: 'leased', jobId: lease.jobId })
    expect(slot.running()).toBeUndefined()
    const abort = new AbortController()
    const running = slot.begin(lease, abort)
    expect(slot.get()).toMatchObject({
      kind: 'running',
      lease,
      abort,
      acceptedAt: 1000,
      startedAt: null,
      stopping: null,
    })
    slot.started(1500)
    expect(slot.running()?.startedAt).toBe(1500)
    let done = false
    void running.done.then(() => {
      done = true
    })
    expect(slot.release(lease.jobId)).toBe('running')
    await Promise.resolve()
    expect(done).toBe(true)
    expect(slot.get()).toEqual({ kind: 'idle' })
  })

  it('holds one job: a second lease while leased or running is a bug and throws, naming the holder', () => {
    const { slot, lease } = setup()
    slot.lease(lease.jobId)
    expect(() => slot.lease('job_0000000000second')).toThrow(
      expect.objectContaining({
        name: 'KilnError',
        kind: 'INTERNAL_ERROR',
        message: `the job slot must be idle for job_0000000000second, but it is leased by ${lease.jobId}`,
      }),
    )
    slot.begin(lease, new AbortController())
    expect(() => slot.lease('job_0000000000second')).toThrow(/running by job_0000000000slottest/)
  })

  it('begins only the job it leased', () => {
    const { slot, lease } = setup()
    expect(() => slot.begin(lease, new AbortController())).toThrow(
      /must be leased for job_0000000000slottest, but it is idle/,
    )
    slot.lease('job_0000000000another')
    expect(() => slot.begin(lease, new AbortController())).toThrow(/leased by job_0000000000another/)
  })

  it('releases only for the job that holds it; a leased slot (bond failed) goes back to idle', () => {
    const { slot, lease } = setup()
    expect(slot.release(lease.jobId)).toBeUndefined()
    slot.lease(lease.jobId)
    expect(slot.release('job_0000000000another')).toBeUndefined()
    expect(slot.jobId()).toBe(lease.jobId)
    expect(slot.release(lease.jobId)).toBe('leased')
    expect(slot.get()).toEqual({ kind: 'idle' })
  })

  it('stops the running job once, saying why; nothing to stop while idle or leased', () => {
    const { slot, lease } = setup()
    expect(slot.stop('paused')).toBe(false)
    slot.lease(lease.jobId)
    expect(slot.stop('paused')).toBe(false)
    const abort = new AbortController()
    slot.begin(lease, abort)
    expect(slot.stop('paused by its owner')).toBe(true)
    expect(abort.signal.aborted).toBe(true)
    expect((abort.signal.reason as Error).message).toBe('paused by its owner')
    expect(slot.running()?.stopping).toBe('paused by its owner')
    expect(slot.stop('again')).toBe(false)
    expect(slot.running()?.stopping).toBe('paused by its owner')
  })
})

function setup() {
  const jobId = 'job_0000000000slottest'
  const lease: Lease = {
    jobId,
    client: Identity.generate().address,
    provider: Identity.generate().address,
    arbiter: Identity.generate().address,
    spec: JobSpec.parse({ image: 'kiln/busybox:1', command: ['true'], maxPricePerHour: 1_000_000 }),
    pricePerHour: 360_000,
    lockAmount: 60_000,
    mint: Identity.generate().address,
    multisig: Identity.generate().address,
    vault: Identity.generate().address,
    escrowId: escrowIdFor(jobId, 1),
    startBy: Date.now() + 60_000,
    bond: 0,
    feeBps: 0,
  }
  return { slot: createSlot(() => 1000), lease }
}
