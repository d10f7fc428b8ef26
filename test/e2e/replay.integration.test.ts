import { describe, expect, it } from 'vitest'
import { JobSpec, Kind, parseOrThrow, seal, type Envelope } from '@kiln/protocol'
import { createKilnClient } from '@kiln/sdk'
import { useNetwork } from '../support/use-network.ts'

/** POSTs a signed request as a captured copy would be sent again: the very same bytes. */
async function send(
  api: string,
  path: string,
  envelope: Envelope,
): Promise<{
  status: number
  body: { result?: { data: Record<string, unknown> }; error?: { data: { kiln?: Record<string, unknown> } } }
}> {
  const res = await fetch(`${api}/trpc/${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ envelope }),
  })
  return { status: res.status, body: (await res.json()) as never }
}

const replayed = {
  status: 409,
  body: { error: { data: { kiln: expect.objectContaining({ code: 'KILN_1006', kind: 'ENVELOPE_REPLAYED' }) } } },
}

/** Two coordinators on one Postgres, each restarted: a used request stays used. */
describe('a captured API request sent again', () => {
  const fx = useNetwork({ providers: 0, marketplaces: 2 })

  it('is refused as ENVELOPE_REPLAYED by the other coordinator and after restarts, and no second job is made', async () => {
    const [a, b] = fx.net.apis as [string, string]
    const spec = parseOrThrow(
      JobSpec,
      { image: 'kiln/busybox:1', command: ['true'], maxPricePerHour: 100_000, timeoutSec: 30 },
      'job spec',
    )
    const submit = seal(fx.client, Kind.submit, { spec })
    const first = await send(a, 'jobs.submit', submit)
    expect(first.status).toBe(200)
    const jobId = String(first.body.result?.data.jobId)

    expect(await send(b, 'jobs.submit', submit)).toMatchObject(replayed)
    await fx.net.restartMarketplace(0)
    expect(await send(a, 'jobs.submit', submit)).toMatchObject(replayed)
    await fx.net.restartMarketplace(1, { crash: true })
    expect(await send(b, 'jobs.submit', submit)).toMatchObject(replayed)

    // Every action is guarded alike: a cancel taken by one coordinator is not taken again by the other.
    const cancel = seal(fx.client, Kind.cancel, { jobId })
    expect((await send(b, 'jobs.cancel', cancel)).status).toBe(200)
    expect(await send(a, 'jobs.cancel', cancel)).toMatchObject(replayed)

    const mine = await createKilnClient({ url: a, identity: fx.client }).list({ client: fx.client.address })
    expect(mine.map((j) => j.id)).toEqual([jobId])
  })

  it('refuses an API request sealed to live longer than two minutes', async () => {
    const spec = parseOrThrow(
      JobSpec,
      { image: 'kiln/busybox:1', maxPricePerHour: 100_000, timeoutSec: 30 },
      'job spec',
    )
    const res = await send(fx.net.api, 'jobs.submit', seal(fx.client, Kind.submit, { spec }, { ttlMs: 3600_000 }))
    expect(res).toMatchObject({
      status: 400,
      body: {
        error: {
          data: {
            kiln: expect.objectContaining({
              kind: 'ENVELOPE_MALFORMED',
              context: expect.objectContaining({ maxTtlMs: 120_000 }),
            }),
          },
        },
      },
    })
  })
})
