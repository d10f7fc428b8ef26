import { Connection } from '@solana/web3.js'
import { describe, expect, it } from 'vitest'
import { openDb, settlements } from '@kiln/db'
import { tokenBalance } from '@kiln/escrow'
import type { Address } from '@kiln/protocol'
import { createKilnClient } from '@kiln/sdk'
import { useNetwork } from '../support/use-network.ts'

/** Three coordinator processes on one Redis and one Postgres: no job dispatched twice, none lost. */
describe('scale-out: three coordinators', () => {
  const fx = useNetwork({ providers: 2, marketplaces: 3 }, 20_000_000)

  it('runs every job exactly once, whichever coordinator took it', async () => {
    const kilns = fx.net.apis.map((url) => createKilnClient({ url, identity: fx.client }))
    const ids: string[] = []
    for (let i = 0; i < 9; i++) {
      const { jobId } = await kilns[i % kilns.length]!.submit({
        image: 'kiln/matmul:1',
        command: ['48'],
        maxPricePerHour: 1_000_000,
        timeoutSec: 30,
      })
      ids.push(jobId)
    }
    // Each job is followed through a different coordinator than the one that took it.
    const jobs = await Promise.all(ids.map((id, i) => kilns[(i + 1) % kilns.length]!.watch(id)))
    expect(jobs.map((j) => j.state)).toEqual(ids.map(() => 'done'))
    const { db, close } = await openDb({ databaseUrl: fx.net.databaseUrl! })
    try {
      const rows = await db.select().from(settlements)
      for (const j of jobs) {
        // One placement per attempt, one payment in all (a split: seconds used, the rest back); any extra attempt was refunded.
        expect(j.events.filter((e) => e.to === 'matched')).toHaveLength(j.attempt)
        expect(rows.filter((r) => r.jobId === j.id && (r.action === 'release' || r.action === 'split'))).toHaveLength(1)
        expect(rows.filter((r) => r.jobId === j.id && r.action === 'refund')).toHaveLength(j.attempt - 1)
      }
    } finally {
      await close()
    }
    // Each job's last run was paid; earlier placements were refunded in full.
    const paid = jobs.reduce((n, j) => n + j.lock!.amount - j.refundedToClient!, 0)
    const conn = new Connection(fx.net.rpcUrl, 'confirmed')
    expect(await tokenBalance(conn, fx.net.mint as Address, fx.client.address)).toBe(fx.funds - paid)
  })
})
