import { describe, expect, it } from 'vitest'
import { Kind, seal } from '@kiln/protocol'
import { createKilnClient } from '@kiln/sdk'
import { useNetwork } from '../support/use-network.ts'

interface Answer {
  status: number
  text: string
  kiln?: { code: string; kind: string; message: string; context: { issues?: { path: string }[] } }
}

async function post(api: string, path: string, body: string): Promise<Answer> {
  const res = await fetch(`${api}/trpc/${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  })
  const text = await res.text()
  return {
    status: res.status,
    text,
    kiln: (JSON.parse(text) as { error?: { data?: { kiln?: Answer['kiln'] } } }).error?.data?.kiln,
  }
}

/** Input meant to reach the database or the stack, sent to a real marketplace over HTTP. */
describe('bad input at the API', () => {
  const fx = useNetwork({ providers: 0 })

  it('refuses a NUL in a job name as PAYLOAD_INVALID naming spec.name, and says nothing of SQL', async () => {
    const envelope = seal(fx.client, Kind.submit, {
      spec: { image: 'kiln/busybox:1', name: 'nul\u0000name', maxPricePerHour: 100_000, timeoutSec: 30 },
    })
    const res = await post(fx.net.api, 'jobs.submit', JSON.stringify({ envelope }))
    expect(res.status).toBe(400)
    expect(res.kiln).toMatchObject({
      code: 'KILN_2001',
      kind: 'PAYLOAD_INVALID',
      context: { issues: [expect.objectContaining({ path: 'spec.name' })] },
    })
    expect(res.text).not.toMatch(/insert|select|jsonb|unicode escape|stack|\.ts:/i)
    // A NUL in a read's filter is refused at the schema too, instead of reaching a query.
    const list = await fetch(
      `${fx.net.api}/trpc/jobs.list?input=${encodeURIComponent(JSON.stringify({ client: 'a\u0000b' }))}`,
    )
    expect(list.status).toBe(400)
    expect(await list.text()).toMatch(/"path":"client"/)
  })

  it('refuses a 100,000-deep JSON body with 400 and a clear message, and goes on answering', async () => {
    const deep = '['.repeat(100_000) + ']'.repeat(100_000)
    const res = await post(fx.net.api, 'jobs.submit', `{"envelope":${deep}}`)
    expect(res.status).toBe(400)
    expect(res.kiln).toMatchObject({
      code: 'KILN_2001',
      message: expect.stringMatching(/nests more than 32 levels deep/),
    })
    const deepQuery = await fetch(
      `${fx.net.api}/trpc/jobs.list?input=${encodeURIComponent(`{"client":${'['.repeat(1000)}${']'.repeat(1000)}}`)}`,
    )
    expect(deepQuery.status).toBe(400)

    expect((await fetch(`${fx.net.api}/healthz`)).status).toBe(200)
    const kiln = createKilnClient({ url: fx.net.api, identity: fx.client })
    const { jobId } = await kiln.submit({
      image: 'kiln/busybox:1',
      command: ['true'],
      maxPricePerHour: 100_000,
      timeoutSec: 30,
    })
    expect((await kiln.get(jobId)).state).toBe('queued')
  })
})
