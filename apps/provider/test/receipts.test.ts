import { describe, expect, it } from 'vitest'
import { Identity, JobSpec, type Lease, type ResultReceipt } from '@kiln/protocol'
import { owedTo } from '../src/receipts.ts'

const a = () => Identity.generate().address
const lease = (bond: number, feeBps: number): Lease => ({
  jobId: 'job_0000000000abcdef',
  client: a(),
  provider: a(),
  arbiter: a(),
  mint: a(),
  multisig: a(),
  vault: a(),
  spec: JobSpec.parse({ image: 'kiln/busybox:1', maxPricePerHour: 3_600_000 }),
  pricePerHour: 3_600_000,
  lockAmount: 10_000,
  escrowId: 'job_0000000000abcdefa7',
  startBy: 0,
  bond,
  feeBps,
})
const receipt = (status: 'succeeded' | 'failed'): ResultReceipt => ({
  jobId: 'job_0000000000abcdef',
  provider: a(),
  status,
  exitCode: status === 'succeeded' ? 0 : 1,
  outputDigest: null,
  outputBytes: 0,
  logDigest: '0'.repeat(64),
  logBytes: 0,
  startedAt: 1,
  endedAt: 2001,
  containerSeconds: 2,
  gpuSeconds: 0,
})

describe('what a provider insists on before it co-signs', () => {
  it("its work less the lease's fee (rounded down, as the marketplace does), plus its bond", () => {
    expect(owedTo({ lease: lease(10_000, 100), receipt: receipt('succeeded'), delivered: true })).toEqual({
      earned: 2000,
      owed: 2000 - 20 + 10_000,
    })
  })

  it('only its bond back when its record earned nothing (a failed or undelivered run)', () => {
    expect(owedTo({ lease: lease(10_000, 100), receipt: receipt('failed'), delivered: true })).toEqual({
      earned: 0,
      owed: 10_000,
    })
    expect(owedTo({ lease: lease(5, 0), receipt: receipt('succeeded'), delivered: false })).toEqual({
      earned: 0,
      owed: 5,
    })
  })

  it('reads a journal record from before bonds and fees as neither', () => {
    const old = { ...lease(0, 0) } as Partial<Lease>
    delete old.bond
    delete old.feeBps
    expect(owedTo({ lease: old as Lease, receipt: receipt('succeeded'), delivered: true })).toEqual({
      earned: 2000,
      owed: 2000,
    })
  })
})
