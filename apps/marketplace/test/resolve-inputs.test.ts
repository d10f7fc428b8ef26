import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createFileArtifactStore, packCanonicalTar } from '@kiln/artifacts'
import { JobSpec, sha256Hex, type JobSpecInput } from '@kiln/protocol'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { resolveInputs, type ResolveDeps } from '../src/inputs/resolve.ts'

const ALICE = 'alice'
const DONE = 'job_0000000000done'
const RUNNING = 'job_00000000000run'

describe('resolveInputs: job: sources get the digest of what they name', () => {
  let dir: string
  let deps: ResolveDeps
  let output: { digest: string; bytes: number }
  const spec = (inputs: JobSpecInput['inputs']): JobSpec =>
    JobSpec.parse({ image: 'kiln/infer:1', maxPricePerHour: 1, inputs })

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kiln-resolve-'))
    const out = join(dir, 'out')
    mkdirSync(join(out, 'sub'), { recursive: true })
    writeFileSync(join(out, 'results.jsonl'), '{"a":1}\n')
    writeFileSync(join(out, 'sub', 'b.txt'), 'b'.repeat(300_000))
    const packed = await packCanonicalTar(out)
    const artifacts = createFileArtifactStore(join(dir, 'artifacts'))
    artifacts.put(packed.tar, packed.digest)
    output = { digest: packed.digest, bytes: packed.bytes }
    const jobs = new Map([
      [
        DONE,
        { id: DONE, client: ALICE, state: 'done' as const, outputDigest: packed.digest, outputBytes: packed.bytes },
      ],
      [RUNNING, { id: RUNNING, client: ALICE, state: 'running' as const, outputDigest: null, outputBytes: null }],
    ])
    deps = { getJob: async (id) => jobs.get(id), artifacts, tmpDir: dir }
  })
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('a whole output becomes a folder input with the output digest; other inputs are untouched', async () => {
    const url = { name: 'w', source: 'https://example.org/w', sha256: 'a'.repeat(64), size: 3 }
    const r = await resolveInputs(spec([url, { name: 'prev', source: `job:${DONE}` }]), ALICE, deps)
    expect(r.inputs[0]).toEqual({ ...url, kind: 'file' })
    expect(r.inputs[1]).toMatchObject({ sha256: output.digest, size: output.bytes, kind: 'dir' })
  })

  it('one file of an output is copied into the store under its own digest', async () => {
    const r = await resolveInputs(spec([{ name: 'b', source: `job:${DONE}/out/sub/b.txt` }]), ALICE, deps)
    const want = sha256Hex(Buffer.from('b'.repeat(300_000)))
    expect(r.inputs[0]).toMatchObject({ sha256: want, size: 300_000, kind: 'file' })
    expect(deps.artifacts.has(want)).toBe(true)
    expect(readFileSync(join(dir, 'artifacts', want), 'utf8')).toBe('b'.repeat(300_000))
  })

  it('refuses, naming the field: a stranger, an unfinished job, a missing path, a wrong stated digest', async () => {
    const one = (source: string, extra: object = {}) =>
      resolveInputs(spec([{ name: 'x', source, ...extra }]), ALICE, deps)
    await expect(resolveInputs(spec([{ name: 'x', source: `job:${DONE}` }]), 'mallory', deps)).rejects.toMatchObject({
      kind: 'JOB_NOT_FOUND',
      context: { issues: [{ path: 'inputs.0.source' }] },
    })
    await expect(one(`job:${RUNNING}`)).rejects.toMatchObject({ kind: 'JOB_WRONG_STATE' })
    await expect(one(`job:${DONE}/out/nope.txt`)).rejects.toMatchObject({ kind: 'ARTIFACT_NOT_FOUND' })
    await expect(one(`job:${DONE}`, { sha256: 'b'.repeat(64) })).rejects.toMatchObject({
      kind: 'INPUT_DIGEST_MISMATCH',
    })
  })
})
