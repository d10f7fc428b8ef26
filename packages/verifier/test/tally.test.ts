import { describe, expect, it } from 'vitest'
import { tally, tallyOutputs } from '../src/index.ts'
import { npy, packOutputs } from './support/files.ts'

const run = (provider: string, output: string) => ({ provider, output })
const same = (a: { output: string }, b: { output: string }) => a.output === b.output

describe('tally', () => {
  it('two runs that agree are both honest', () => {
    expect(tally([run('A', 'x'), run('B', 'x')], same)).toEqual({ verdict: 'agree', honest: ['A', 'B'], caught: [] })
  })

  it('two runs that differ need a tie-break, and nobody is caught yet', () => {
    expect(tally([run('A', 'x'), run('B', 'y')], same)).toEqual({ verdict: 'needs_tiebreak', honest: [], caught: [] })
  })

  it('with a tie-break, the majority decides and the minority is caught, whichever it is', () => {
    expect(tally([run('A', 'x'), run('B', 'y'), run('C', 'x')], same)).toEqual({
      verdict: 'decided',
      honest: ['A', 'C'],
      caught: ['B'],
    })
    expect(tally([run('A', 'y'), run('B', 'x'), run('C', 'x')], same)).toEqual({
      verdict: 'decided',
      honest: ['B', 'C'],
      caught: ['A'],
    })
  })

  it('catches nobody without a majority', () => {
    expect(tally([run('A', 'x'), run('B', 'y'), run('C', 'z')], same)).toEqual({
      verdict: 'inconclusive',
      honest: [],
      caught: [],
    })
    // A tolerance comparator need not be transitive: C is close to both, A and B are not close.
    const close = (a: { output: string }, b: { output: string }) => Math.abs(Number(a.output) - Number(b.output)) <= 1
    expect(tally([run('A', '0'), run('B', '2'), run('C', '1')], close)).toEqual({
      verdict: 'inconclusive',
      honest: ['C'],
      caught: [],
    })
  })

  it('refuses the wrong number of runs and runs from the same provider', () => {
    expect(() => tally([run('A', 'x')], same)).toThrowError(expect.objectContaining({ kind: 'PAYLOAD_INVALID' }))
    expect(() => tally([run('A', 'x'), run('A', 'x')], same)).toThrowError(
      expect.objectContaining({ kind: 'PAYLOAD_INVALID' }),
    )
  })
})

describe('tallyOutputs', () => {
  it('compares real output archives with the job comparator', async () => {
    const honest = await packOutputs({ 'result.npy': npy([1, 2, 3]) })
    const jitter = await packOutputs({ 'result.npy': npy([1, 2, 3.000001]) })
    const cheat = await packOutputs({ 'result.npy': npy([0, 0, 0]) })
    const numeric = { kind: 'numeric' as const, rtol: 1e-5 }
    expect(
      await tallyOutputs(
        [
          { provider: 'A', output: honest },
          { provider: 'B', output: jitter },
        ],
        numeric,
      ),
    ).toMatchObject({ verdict: 'agree' })
    expect(
      await tallyOutputs(
        [
          { provider: 'A', output: honest },
          { provider: 'B', output: jitter },
        ],
        { kind: 'exact' },
      ),
    ).toMatchObject({ verdict: 'needs_tiebreak' })
    const t = await tallyOutputs(
      [
        { provider: 'A', output: cheat },
        { provider: 'B', output: jitter },
        { provider: 'C', output: honest },
      ],
      numeric,
    )
    expect(t).toMatchObject({ verdict: 'decided', honest: ['B', 'C'], caught: ['A'] })
    expect(t.comparisons).toHaveLength(3)
  })

  it('runs that exited differently never agree, even with the same output', async () => {
    const out = await packOutputs({ 'result.npy': npy([1, 2, 3]) })
    const t = await tallyOutputs(
      [
        { provider: 'A', output: out, exitCode: 0 },
        { provider: 'B', output: out, exitCode: 1 },
      ],
      { kind: 'exact' },
    )
    expect(t).toMatchObject({ verdict: 'needs_tiebreak', honest: [], caught: [] })
    expect(t.comparisons[0]).toMatchObject({ equal: false, reason: 'exit codes differ: 0 vs 1' })
    expect(
      await tallyOutputs(
        [
          { provider: 'A', output: out, exitCode: 0 },
          { provider: 'B', output: out, exitCode: 0 },
        ],
        { kind: 'exact' },
      ),
    ).toMatchObject({ verdict: 'agree' })
  })
})
