import { describe, expect, it } from 'vitest'
import { moneyFormat, TEST_TOKEN } from '@kiln/protocol'
import type { JobDetails, KilnClient, WatchHandlers } from '@kiln/sdk'
import { follow, stateLine } from '../src/commands/follow.ts'
import { settlementWords } from '../src/money.ts'

const m = moneyFormat(TEST_TOKEN)

describe('what the CLI says of a job', () => {
  it("once matched: the provider's price, lock and bond, not the client's ceiling", () => {
    const [, msg] = stateLine(job({ state: 'matched', pricePerHour: 360_000, bond: 120_000 }), m)!
    expect(msg).toBe(
      'matched provider DHuU6t at 0.36 tUSDC/h (your max 1.00 tUSDC/h): lock 0.012 tUSDC for 120 s, its bond 0.12 tUSDC',
    )
  })

  it('settling: says what the settlement does, and never that a receipt was verified when nothing ran', () => {
    const said = (j: Partial<JobDetails>) => stateLine(job({ state: 'settling', ...j }), m)![1]
    expect(said({ settleOutcome: 'cancelled', settleAction: 'refund' })).toBe(
      'cancelled before it ran: refunding your lock in full, on chain',
    )
    expect(said({ settleOutcome: 'failed_provider', settleAction: 'refund_requeue' })).toBe(
      'the run did not deliver: refunding your lock in full, on chain; the job then goes to another provider',
    )
    expect(
      said({
        settleOutcome: 'failed_provider',
        settleAction: 'refund',
        error: { code: 'KILN_5001', kind: 'IMAGE_NOT_FOUND', message: 'no image kiln/nope:1' },
      }),
    ).toBe('the run did not deliver (KILN_5001 no image kiln/nope:1): refunding your lock in full, on chain')
    expect(said({ settleOutcome: 'timeout', settleAction: 'refund' })).toMatch(
      /^the run did not deliver: refunding your lock in full/,
    )
    expect(said({ settleOutcome: 'caught', settleAction: 'slash' })).toMatch(/^caught: .*slashing its bond to you/)
    expect(said({ settleOutcome: 'verified', settleAction: 'release' })).toMatch(
      /^result accepted: paying the provider for the seconds it ran/,
    )
    for (const outcome of ['cancelled', 'failed_provider', 'timeout', 'caught', null])
      expect(said({ settleOutcome: outcome, settleAction: 'refund' })).not.toMatch(/verified/)
  })

  it('says what it locked and where from the lock it made, even when the job as last read shows no lock yet', async () => {
    const lock = {
      escrowId: 'e',
      vault: 'F9Ngz3omumzerhwDBxXMWN88sBWFWvrabDBasX9sSt7L',
      multisig: 'm',
      mint: 'mint',
      amount: 12_000,
      deadline: 1,
      provider: 'p',
      arbiter: 'a',
    }
    // Only the two calls follow() makes of a job without outputs; the marketplace's side is covered end to end.
    const client = {
      money: async () => m,
      watch: async (_id: string, h: WatchHandlers) => {
        h.onLocked?.('tx1', job({ state: 'matched', lock: null }), lock)
        return job({ state: 'failed', lockSignature: 'tx1' })
      },
    } as unknown as KilnClient
    const lines: string[] = []
    await follow(
      client,
      'job_0mwqa8vhh5f8e8b7616d616e4',
      { api: '', keypair: '', out: '' },
      { out: (l) => lines.push(l), err: () => {} },
      (_i, msg) => lines.push(msg),
    )
    expect(lines[0]).toBe('locked 0.012 tUSDC in escrow vault F9Ngz3omumzerhwDBxXMWN88sBWFWvrabDBasX9sSt7L (tx tx1)')
    expect(lines[1]).toBe('failed — not settled yet')
  })

  it('says "paid" only of the client\'s pay for the work, and the bond apart', () => {
    const s = {
      work: 5,
      fee: 0,
      toProviderForWork: 5,
      bondReturned: 120_000,
      bondSlashed: 0,
      refunded: 11_995,
      signature: 'sig',
    }
    expect(settlementWords(s, m)).toEqual({
      paid: '0.000005 tUSDC for the work (0.000005 tUSDC to the provider, 0.00 tUSDC fee)',
      refunded: '0.011995 tUSDC of the lock',
      bond: '0.12 tUSDC returned to the provider',
    })
    expect(
      settlementWords(
        { ...s, work: 0, toProviderForWork: 0, bondReturned: 0, bondSlashed: 120_000, refunded: 12_000 },
        m,
      ).bond,
    ).toBe('0.12 tUSDC slashed to the client')
  })
})

/** The fields these lines read; the rest of a job does not matter to them. */
function job(over: Partial<JobDetails>): JobDetails {
  return {
    id: 'job_0mwqa8vhh5f8e8b7616d616e4',
    state: 'queued',
    image: 'kiln/matmul:1',
    provider: 'DHuU6t',
    pricePerHour: null,
    bond: null,
    lock: null,
    spec: { timeoutSec: 120, maxPricePerHour: 1_000_000 },
    error: null,
    settlement: null,
    settlementSignature: null,
    lockSignature: null,
    outputDigest: null,
    verification: null,
    waiting: null,
    queuePosition: null,
    estimatedWaitMs: null,
    settleOutcome: null,
    settleAction: null,
    ...over,
  } as unknown as JobDetails
}
