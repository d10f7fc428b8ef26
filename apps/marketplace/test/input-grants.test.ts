import { Identity, JobSpec, Kind, seal, type Address } from '@kiln/protocol'
import type { Job } from '@kiln/scheduler'
import { describe, expect, it } from 'vitest'
import { mayFetchInput } from '../src/inputs/authorize.ts'
import { checkSealedSecrets } from '../src/inputs/secrets.ts'

const digest = 'c'.repeat(64)
const spec = JobSpec.parse({
  image: 'kiln/infer:1',
  maxPricePerHour: 1,
  inputs: [{ name: 'model', source: 'upload', sha256: digest, size: 10 }],
  secrets: ['HF_TOKEN'],
})
const provider = Identity.generate().address
const other = Identity.generate().address

describe('mayFetchInput: a provider reads the inputs of the lease it holds, while it holds it', () => {
  const run = (patch: Partial<Job>) =>
    ({ id: 'job_0000000000root', parentId: null, attempt: 1, provider, state: 'running', spec, ...patch }) as Job
  const deps = (runs: Job[]) => ({ family: async () => runs, escrowIdOf: (r: Pick<Job, 'attempt'>) => `e${r.attempt}` })
  const req = { jobId: 'job_0000000000root', escrowId: 'e1', sha256: digest }

  it('yes for the placed provider in locked or running; no otherwise', async () => {
    expect(await mayFetchInput(deps([run({})]), provider, req)).toBe(true)
    expect(await mayFetchInput(deps([run({ state: 'locked' })]), provider, req)).toBe(true)
    expect(await mayFetchInput(deps([run({})]), other, req)).toBe(false)
    expect(await mayFetchInput(deps([run({ state: 'done' })]), provider, req)).toBe(false)
    expect(await mayFetchInput(deps([run({ state: 'matched' })]), provider, req)).toBe(false)
    expect(await mayFetchInput(deps([run({ attempt: 2 })]), provider, req)).toBe(false)
    expect(await mayFetchInput(deps([run({})]), provider, { ...req, sha256: 'd'.repeat(64) })).toBe(false)
  })
})

describe('checkSealedSecrets: what the marketplace can check of a box it cannot open', () => {
  const client = Identity.generate()
  const target = {
    client: client.address,
    provider,
    jobId: 'job_0000000000root',
    escrowId: 'job_0000000000roota7',
    spec,
  }
  const box = (patch: object = {}, by = client) =>
    seal(
      by,
      Kind.secrets,
      { jobId: target.jobId, escrowId: target.escrowId, provider, epk: 'AAAA', nonce: 'AAAA', box: 'AAAA', ...patch },
      { ttlMs: 3600_000 },
    )

  it('takes a box sealed by the client to this run', () => {
    expect(checkSealedSecrets(box(), target)?.payload.provider).toBe(provider)
  })
  it('refuses a missing, a stranger-signed, or a box for another provider, job or vault', () => {
    expect(() => checkSealedSecrets(undefined, target)).toThrow(/HF_TOKEN/)
    expect(() => checkSealedSecrets(box({}, Identity.generate()), target)).toThrow(/expected/)
    for (const patch of [{ provider: other as Address }, { jobId: 'job_0000000000elsewhere' }, { escrowId: 'x' }])
      expect(() => checkSealedSecrets(box(patch), target)).toThrowError(
        expect.objectContaining({ kind: 'SECRETS_UNSEALABLE' }),
      )
  })
  it('a spec without secrets takes none', () => {
    const plain = { ...target, spec: { secrets: [], privateImage: false } }
    expect(checkSealedSecrets(undefined, plain)).toBeUndefined()
    expect(() => checkSealedSecrets(box(), plain)).toThrow(/names none/)
  })
})
