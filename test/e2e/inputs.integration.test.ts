import { createHmac } from 'node:crypto'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { Identity } from '@kiln/protocol'
import { createKilnClient, unpackOutput, uploadInput } from '@kiln/sdk'
import { useNetwork } from '../support/use-network.ts'

const EXAMPLE = join(import.meta.dirname, '../../examples/batch-inference')
const KEY = 'results-key-7d1c0a9e'

/**
 * The batch-inference example through the whole network: the model (a file) and the data (a
 * folder) are uploaded to the marketplace, fetched by the provider over the mesh, checked and
 * mounted read-only; the results key is a sealed secret. A second job takes one file of the
 * first job's output as its input, so jobs chain.
 */
describe('job inputs', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'kiln-inputs-'))
  const fx = useNetwork({ providers: 1, dataDir })

  it('uploaded file and folder inputs, a sealed secret, then another job output as an input', async () => {
    const kiln = createKilnClient({ url: fx.net.api, identity: fx.client })
    const to = { url: fx.net.api, identity: fx.client }
    const model = await uploadInput(to, join(EXAMPLE, 'model.bin'))
    const data = await uploadInput(to, join(EXAMPLE, 'data'))
    expect(data.kind).toBe('dir')
    const { jobId } = await kiln.submit({
      image: 'kiln/infer:1',
      inputs: [
        { name: 'model', source: 'upload', ...model },
        { name: 'data', source: 'upload', ...data },
      ],
      secrets: ['RESULTS_KEY'],
      resources: { cpu: 0.5, memoryMb: 64 },
      maxPricePerHour: 1_000_000,
      timeoutSec: 60,
    })
    const logs: string[] = []
    const job = await kiln.watch(jobId, {
      pollMs: 300,
      secrets: { values: { RESULTS_KEY: KEY } },
      onLog: (l) => {
        logs.push(l.text)
      },
    })
    expect(job.state).toBe('done')
    expect(logs.join('')).toContain('5 items from 2 files')
    expect(logs.join('')).toContain('RESULTS_KEY=***')
    const out = join(dataDir, 'out-1')
    await unpackOutput(await kiln.download(job.outputDigest!), out)
    const results = readFileSync(join(out, 'results.jsonl'))
    expect(results.toString().trim().split('\n')).toHaveLength(5)
    expect(readFileSync(join(out, 'results.hmac'), 'utf8').trim()).toBe(
      createHmac('sha256', KEY).update(results).digest('hex'),
    )

    const { jobId: second } = await kiln.submit({
      image: 'kiln/busybox:1',
      command: ['sh', '-c', 'wc -l < /in/prev > /out/count.txt && cat /in/prev'],
      inputs: [{ name: 'prev', source: `job:${jobId}/out/results.jsonl` }],
      resources: { cpu: 0.5, memoryMb: 64 },
      maxPricePerHour: 1_000_000,
      timeoutSec: 60,
    })
    const chained = await kiln.watch(second, { pollMs: 300 })
    expect(chained.state).toBe('done')
    const out2 = join(dataDir, 'out-2')
    await unpackOutput(await kiln.download(chained.outputDigest!), out2)
    expect(readFileSync(join(out2, 'count.txt'), 'utf8').trim()).toBe('5')

    // A stranger cannot name the first client's upload, nor its job.
    const mallory = createKilnClient({
      url: fx.net.api,
      identity: Identity.generate(),
    })
    await expect(
      mallory.submit({
        image: 'kiln/infer:1',
        inputs: [{ name: 'model', source: 'upload', ...model }],
        maxPricePerHour: 1_000_000,
      }),
    ).rejects.toMatchObject({ kind: 'ARTIFACT_NOT_FOUND' })
  })
})
