import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { createKilnClient, unpackOutput } from '@kiln/sdk'
import { useNetwork } from '../support/use-network.ts'

const SECRET = `hf_${createHash('sha256').update(String(Math.random())).digest('hex').slice(0, 24)}`

/**
 * A sealed secret through the whole network: the client seals it to the provider its job is
 * placed on, with the lock; the marketplace relays the box it cannot open; the provider opens
 * it inside the run and gives it to the container as env, masking it in the streamed logs.
 * Afterwards the value is in no marketplace answer, no database file and no log file.
 */
describe('sealed secrets', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'kiln-secrets-'))
  const fx = useNetwork({ providers: 1, dataDir })

  it('reach the container and nothing else', async () => {
    const kiln = createKilnClient({ url: fx.net.api, identity: fx.client })
    const spec = {
      image: 'kiln/busybox:1',
      command: ['sh', '-c', 'echo "token is $HF_TOKEN"; printf %s "$HF_TOKEN" | sha256sum > /out/token.sha256'],
      secrets: ['HF_TOKEN'],
      resources: { cpu: 0.5, memoryMb: 64 },
      maxPricePerHour: 1_000_000,
      timeoutSec: 60,
    }
    const { jobId } = await kiln.submit(spec)
    const logs: string[] = []
    const job = await kiln.watch(jobId, {
      pollMs: 300,
      secrets: { values: { HF_TOKEN: SECRET } },
      onLog: (l) => {
        logs.push(l.text)
      },
    })
    expect(job.state).toBe('done')
    expect(logs.join('')).toContain('token is ***')

    const out = await unpackOutput(await kiln.download(job.outputDigest!), join(dataDir, 'out'))
    expect(out.files).toBeGreaterThan(0)
    const written = execFileSync('cat', [join(dataDir, 'out', 'token.sha256')]).toString()
    expect(written.split(' ')[0]).toBe(createHash('sha256').update(SECRET).digest('hex'))

    // No answer of the marketplace, no database file, no log, no journal holds the value.
    const answers = JSON.stringify([
      await kiln.get(jobId),
      await kiln.logs(jobId),
      await kiln.publicJob(jobId),
      await kiln.list(),
    ])
    expect(answers).not.toContain(SECRET)
    const grep = (() => {
      try {
        return execFileSync('grep', ['-rl', '--binary-files=text', SECRET, dataDir]).toString()
      } catch (e) {
        if ((e as { status?: number }).status === 1) return '' // grep: no match
        throw e
      }
    })()
    expect(grep.split('\n').filter((f) => f && !f.startsWith(join(dataDir, 'out')))).toEqual([])
  })
})
