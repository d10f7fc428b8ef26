import { describe, expect, it } from 'vitest'
import type { Job } from '@kiln/scheduler'
import { planFor } from '../src/coordinator/settle.ts'

const receipt = (containerSeconds: number) => ({ payload: { containerSeconds } }) as unknown as Job['receipt']
const run = (patch: Partial<Job>): Job =>
  ({
    lockAmount: 10_000,
    bond: 10_000,
    pricePerHour: 3_600_000,
    feeBps: 100,
    settleOutcome: 'verified',
    receipt: receipt(2),
    ...patch,
  }) as Job

describe("a run's settlement plan from its vault", () => {
  it('pays the work less the fee and the bond back, the rest of the lock to the client', () => {
    const p = planFor(run({}), 20_000)
    expect(p).toMatchObject({
      action: 'split',
      work: 2000,
      fee: 20,
      provider: 2000 - 20 + 10_000,
      client: 8000,
      arbiter: 20,
    })
  })

  it('slashes a caught run: lock and bond to the client, co-signed by the client', () => {
    expect(planFor(run({ settleOutcome: 'caught' }), 20_000)).toMatchObject({
      action: 'slash',
      provider: 0,
      client: 20_000,
      cosigner: 'client',
    })
  })

  it('treats a bond that was never posted as absent: nothing to return, nothing to slash', () => {
    expect(planFor(run({ settleOutcome: 'failed_provider' }), 10_000)).toMatchObject({
      action: 'refund',
      provider: 0,
      client: 10_000,
      bondReturned: 0,
    })
    expect(planFor(run({ settleOutcome: 'caught' }), 10_000)).toMatchObject({
      provider: 0,
      client: 10_000,
      bondSlashed: 0,
    })
  })

  it('refunds a client who cancelled before locking everything, from what is there', () => {
    expect(planFor(run({ settleOutcome: 'cancelled', receipt: null }), 4000)).toMatchObject({
      action: 'refund',
      provider: 0,
      client: 4000,
    })
  })
})
