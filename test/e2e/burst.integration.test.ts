import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Identity, isKilnError, maxLeaseCost } from '@kiln/protocol'
import { createKilnClient } from '@kiln/sdk'
import { startNetwork, type Network } from '../support/network.ts'

const JOBS = 10_000
const CLIENTS = 10
const CONCURRENCY = 48

/** A burst of 10,000 submissions: each is accepted and kept, or rejected with a reason. */
describe('10,000 jobs in a burst', () => {
  let net: Network
  const clients = Array.from({ length: CLIENTS }, () => Identity.generate())
  const spec = { image: 'kiln/matmul:1', command: ['16'], maxPricePerHour: 1_000_000, timeoutSec: 60 }
  const perJob = maxLeaseCost(spec.maxPricePerHour, spec.timeoutSec)
  // Each client can afford 80% of its share: the rest must be refused, not lost.
  const affordable = Math.floor((JOBS / CLIENTS) * 0.8)
  beforeAll(async () => {
    net = await startNetwork({ providers: 0 })
    for (const c of clients) await net.fund(c.address, { lamports: 1_000_000_000, tokens: affordable * perJob })
  })
  afterAll(async () => {
    await net?.stop()
  })

  it('accepts what the wallets cover, refuses the rest with INSUFFICIENT_FUNDS, and loses none', async () => {
    const kilns = clients.map((identity) => createKilnClient({ url: net.api, identity }))
    const accepted: string[] = []
    const rejected: string[] = []
    let next = 0
    const t0 = Date.now()
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < JOBS) {
          const i = next++
          try {
            accepted.push((await kilns[i % CLIENTS]!.submit(spec)).jobId)
          } catch (e) {
            rejected.push(isKilnError(e) ? e.kind : `unexpected: ${String(e)}`)
          }
        }
      }),
    )
    const seconds = (Date.now() - t0) / 1000
    process.stdout.write(
      `burst: ${JOBS} submissions in ${seconds.toFixed(1)} s (${(JOBS / seconds).toFixed(0)}/s), ${accepted.length} accepted, ${rejected.length} rejected\n`,
    )
    expect(accepted.length + rejected.length).toBe(JOBS)
    expect(new Set(rejected)).toEqual(new Set(['INSUFFICIENT_FUNDS']))
    expect(accepted).toHaveLength(affordable * CLIENTS)
    expect(new Set(accepted).size).toBe(accepted.length)
    // Every accepted job is stored and waiting (no provider is online), none vanished (the public view: they are several clients' jobs).
    let checked = 0
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (checked < accepted.length) {
          const id = accepted[checked++]!
          expect((await kilns[0]!.publicJob(id)).state).toBe('queued')
        }
      }),
    )
  }, 600_000)
})
