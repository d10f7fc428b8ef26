import { describe, expect, it } from 'vitest'
import { createKilnClient } from '@kiln/sdk'
import { waitFor } from '../support/network.ts'
import { useNetwork } from '../support/use-network.ts'

/**
 * A provider is matched only to jobs whose bond it can post: its advert says how much
 * stablecoin it holds. Provider 0 is the cheaper one but holds only POOR tokens, so a job with
 * a larger bond goes to provider 1; a job whose bond neither can post waits, saying so.
 */
const POOR = 1000

describe('bond capacity in matching', () => {
  const fx = useNetwork({
    providers: 2,
    providerPrice: (i) => (i === 0 ? 300_000 : 360_000),
    providerFunded: (i) => i !== 0,
  })

  it('skips a provider that cannot post the bond for the richer one; a job nobody can bond for waits saying why', async () => {
    const kiln = createKilnClient({ url: fx.net.api, identity: fx.client })
    const [p0, p1] = fx.net.providers.map((p) => String(p.info.address))
    await fx.net.fund(p0!, { lamports: 1_000_000_000, tokens: POOR })
    await waitFor(
      async () => (await kiln.providers()).find((p) => p.address === p0)?.available === true,
      20_000,
      'the poor provider to advertise itself available',
    )

    const job = {
      image: 'kiln/busybox:1',
      command: ['sh', '-c', 'echo bonded'],
      resources: { cpu: 0.5, memoryMb: 64 },
      maxPricePerHour: 1_000_000,
      timeoutSec: 60,
    }
    const { jobId: bonded } = await kiln.submit({ ...job, verification: { p: 0, bondPerJob: 50 * POOR } })
    expect(await kiln.watch(bonded, { pollMs: 500 })).toMatchObject({ state: 'done', provider: p1 })
    const events = (await kiln.get(bonded)).events.map((e) => e.reason).join('\n')
    expect(events).not.toContain('BOND_NOT_POSTED')
    expect(events).not.toContain(p0)

    const { jobId: tooBig } = await kiln.submit({ ...job, verification: { p: 0, bondPerJob: 1_000_000_000 } })
    await waitFor(
      async () => /2 bond \(cannot post the bond\)/.test((await kiln.get(tooBig)).waiting ?? ''),
      20_000,
      'the job nobody can bond for to wait saying why',
    )
    expect((await kiln.get(tooBig)).state).toBe('queued')
    await kiln.cancel(tooBig)
  }, 180_000)
})
