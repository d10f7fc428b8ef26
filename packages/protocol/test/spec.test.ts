import { describe, expect, it } from 'vitest'
import { JobSpec, parseOrThrow, maxLeaseCost, leaseCost } from '../src/index.ts'

describe('job spec', () => {
  it('fills defaults for a minimal spec', () => {
    const spec = parseOrThrow(JobSpec, { image: 'kiln/matmul:1', maxPricePerHour: 1_000_000 }, 'job spec')
    expect(spec.resources).toEqual({ cpu: 1, memoryMb: 512, gpu: { count: 0, models: [], minVramMb: 0 } })
    expect(spec.network).toBe(false)
    expect(spec.timeoutSec).toBe(600)
  })

  it('names every bad field with what would be accepted', () => {
    try {
      parseOrThrow(
        JobSpec,
        { image: 'Bad Image!', maxPricePerHour: -1, resources: { memoryMb: 1 }, minReputation: 2, bogus: 1 },
        'job spec',
      )
      expect.unreachable()
    } catch (e) {
      const issues = (e as { context: { issues: { path: string; expected?: string }[] } }).context.issues
      const paths = issues.map((i) => i.path)
      expect(paths).toEqual(
        expect.arrayContaining(['image', 'maxPricePerHour', 'resources.memoryMb', 'minReputation', '']),
      )
      expect(issues.find((i) => i.path === 'resources.memoryMb')?.expected).toBe('>= 16')
      expect(issues.find((i) => i.path === 'minReputation')?.expected).toBe('<= 1')
    }
  })

  it('refuses control characters in text fields, naming the field; tabs and line breaks only where text needs them', () => {
    const base = { image: 'kiln/matmul:1', maxPricePerHour: 1 }
    const issuesOf = (spec: object) => {
      try {
        parseOrThrow(JobSpec, spec, 'job spec')
        return []
      } catch (e) {
        expect(e).toMatchObject({ kind: 'PAYLOAD_INVALID', code: 'KILN_2001' })
        return (e as { context: { issues: { path: string; message: string }[] } }).context.issues
      }
    }
    expect(issuesOf({ ...base, name: 'a\u0000b' })).toEqual([
      { path: 'name', message: expect.stringMatching(/U\+0000 at position 1/) },
    ])
    expect(issuesOf({ ...base, name: 'two\nlines' }).map((i) => i.path)).toEqual(['name'])
    expect(issuesOf({ ...base, command: ['sh', '-c', 'ok\u007f'] }).map((i) => i.path)).toEqual(['command.2'])
    expect(issuesOf({ ...base, env: { TOKEN: 'x\u001by' } }).map((i) => i.path)).toEqual(['env.TOKEN'])
    expect(issuesOf({ ...base, region: 'eu\u0000' }).map((i) => i.path)).toEqual(['region'])
    expect(issuesOf({ ...base, resources: { gpu: { models: ['A100\u0000'] } } }).map((i) => i.path)).toEqual([
      'resources.gpu.models.0',
    ])
    expect(
      issuesOf({ ...base, verification: { comparator: { kind: 'exact', files: ['out/\u0000'] } } }).map((i) => i.path),
    ).toEqual(['verification.comparator.files.0'])
    expect(issuesOf({ ...base, image: 'kiln/matmul:1\u0000' }).map((i) => i.path)).toEqual(['image'])
    expect(
      issuesOf({
        ...base,
        name: 'caf\u00e9 run',
        command: ['sh', '-c', 'echo a\n\techo b\r\n'],
        env: { NOTE: 'line 1\nline 2' },
      }),
    ).toEqual([])
  })

  it('takes verification settings and names their bad fields', () => {
    const ok = parseOrThrow(
      JobSpec,
      {
        image: 'kiln/matmul:1',
        maxPricePerHour: 1,
        verification: { p: 0.2, comparator: { kind: 'numeric', rtol: 1e-4 } },
      },
      'job spec',
    )
    expect(ok.verification).toMatchObject({ p: 0.2, comparator: { kind: 'numeric', rtol: 1e-4, atol: 1e-8 } })
    try {
      parseOrThrow(
        JobSpec,
        {
          image: 'kiln/matmul:1',
          maxPricePerHour: 1,
          verification: { p: 2, bondPerJob: 1, bondRatio: 1, comparator: { kind: 'fuzzy' } },
        },
        'job spec',
      )
      expect.unreachable()
    } catch (e) {
      const paths = (e as { context: { issues: { path: string }[] } }).context.issues.map((i) => i.path)
      expect(paths).toEqual(expect.arrayContaining(['verification.p', 'verification.comparator.kind']))
    }
  })

  it('prices a lease by the second, rounded up and capped by the lock', () => {
    expect(maxLeaseCost(3_600_000, 600)).toBe(600_000)
    expect(leaseCost(3_600_000, 1.5, 600_000)).toBe(1_500)
    expect(leaseCost(3_600_000, 10_000, 600_000)).toBe(600_000)
  })
})

describe('escrow ids', () => {
  it('are valid job ids, one per attempt, and tie back to their job', async () => {
    const { escrowIdFor, isEscrowIdOf, jobId } = await import('../src/index.ts')
    const id = 'job_0mwq7a0eea48e2057c2ef81a4'
    expect(jobId.safeParse(escrowIdFor(id, 1)).success).toBe(true)
    expect(escrowIdFor(id, 1)).not.toBe(escrowIdFor(id, 2))
    expect(isEscrowIdOf(escrowIdFor(id, 3), id)).toBe(true)
    expect(isEscrowIdOf(escrowIdFor(id, 3), 'job_0mwq7a0eea48e2057c2ef81a5')).toBe(false)
    expect(isEscrowIdOf(`${id}ax`, id)).toBe(false)
  })
})
