import { describe, expect, it } from 'vitest'
import type { Job } from '@kiln/scheduler'
import { planFor } from '../src/coordinator/settle.ts'
import { publicView, settlementOf } from '../src/coordinator/views.ts'

const receipt = (containerSeconds: number) => ({ payload: { containerSeconds } }) as unknown as Job['receipt']
/** A run settled as its plan says, with the amounts the settlement step stores. */
const settled = (patch: Partial<Job>, balance: number): Job => {
  const base = {
    lockAmount: 10_000,
    bond: 10_000,
    pricePerHour: 3_600_000,
    feeBps: 100,
    settleOutcome: 'verified',
    receipt: receipt(2),
    ...patch,
  } as Job
  const plan = planFor(base, balance)
  return {
    ...base,
    settlementSignature: 'sig',
    paidToProvider: plan.provider,
    refundedToClient: plan.client,
    fee: plan.fee,
  }
}

describe("where a settled run's money went", () => {
  it("splits paid work into the fee and the provider's pay, apart from the bond coming back", () => {
    expect(settlementOf(settled({}, 20_000))).toEqual({
      work: 2000,
      fee: 20,
      toProviderForWork: 1980,
      bondReturned: 10_000,
      bondSlashed: 0,
      refunded: 8000,
      signature: 'sig',
    })
  })

  it("shows a slashed bond as the client's, and no pay", () => {
    expect(settlementOf(settled({ settleOutcome: 'caught' }, 20_000))).toEqual({
      work: 0,
      fee: 0,
      toProviderForWork: 0,
      bondReturned: 0,
      bondSlashed: 10_000,
      refunded: 10_000,
      signature: 'sig',
    })
  })

  it("refunds a failed provider's run whole; a bond never posted is neither returned nor slashed", () => {
    expect(settlementOf(settled({ settleOutcome: 'failed_provider' }, 20_000))).toMatchObject({
      work: 0,
      bondReturned: 10_000,
      refunded: 10_000,
    })
    expect(settlementOf(settled({ settleOutcome: 'failed_provider' }, 10_000))).toMatchObject({
      work: 0,
      bondReturned: 0,
      bondSlashed: 0,
      refunded: 10_000,
    })
  })

  it('is absent until the settlement is on chain', () => {
    expect(settlementOf({ ...settled({}, 20_000), settlementSignature: null })).toBeNull()
  })

  it('the public view of a job carries no env, command, name, output digest or escrow detail', () => {
    const job = {
      ...settled({}, 20_000),
      id: 'job_x',
      state: 'done',
      client: 'c',
      provider: 'p',
      createdAt: 1,
      startedAt: 2,
      endedAt: 3,
      updatedAt: 3,
      outputDigest: 'd'.repeat(64),
      spec: {
        name: 'secret-name',
        image: 'img',
        command: ['run', 'secret'],
        env: { TOKEN: 'secret' },
        resources: { cpu: 1, memoryMb: 64, gpu: { count: 0, models: [], minVramMb: 0 } },
        maxPricePerHour: 1,
      },
      error: { code: 'KILN_5002', message: 'printed secret' },
      verdict: { verdict: 'decided', runs: 3, caught: ['p'], at: 3, reason: `the job's result is ${'d'.repeat(64)}` },
    } as unknown as Job
    const text = JSON.stringify(publicView(job))
    for (const needle of ['secret', 'd'.repeat(64), 'vault', 'receipt']) expect(text).not.toContain(needle)
    expect(publicView(job)).toMatchObject({
      image: 'img',
      errorCode: 'KILN_5002',
      verification: { verdict: 'decided', caught: ['p'] },
    })
  })
})
