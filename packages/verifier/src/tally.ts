import { KilnError } from '@kiln/protocol'
import { compareOutputs, type Comparison } from './comparators/index.ts'
import type { ComparatorConfigInput } from './comparators/config.ts'

/** One succeeded run of a job: who ran it and what it produced. Failed runs are not tallied. */
export interface RunResult<O = Uint8Array> {
  provider: string
  output: O
  /**
   * The program's exit code, when known: runs that exited differently never agree, whatever
   * their outputs, so a provider cannot pass off a crashed run's partial output as the result.
   */
  exitCode?: number | null
}

/**
 * agree: every run matches every other; all honest.
 * needs_tiebreak: two runs differ; place a third on another independent provider.
 * decided: three runs, two agree and the third matches neither; the third is caught.
 * inconclusive: three runs and no clear minority (all differ, or a tolerance comparator
 *   matches one run to both of two that differ from each other); nobody is caught,
 *   because slashing must rest on two independent runs against one.
 */
export type Verdict = 'agree' | 'needs_tiebreak' | 'decided' | 'inconclusive'

export interface Tally {
  verdict: Verdict
  honest: string[]
  caught: string[]
}

function assertRuns(runs: readonly { provider: string }[]): void {
  if (runs.length !== 2 && runs.length !== 3) {
    throw new KilnError('PAYLOAD_INVALID', `a tally needs 2 or 3 runs, got ${runs.length}`, { runs: runs.length })
  }
  if (new Set(runs.map((r) => r.provider)).size !== runs.length) {
    throw new KilnError('PAYLOAD_INVALID', 'every run in a tally must come from a different provider', {
      providers: runs.map((r) => r.provider),
    })
  }
}

/**
 * The majority decision over 2 or 3 runs, given which pairs agree (`same` is called once
 * per pair, for i < j). Pure: the comparisons happen before (tallyOutputs).
 */
export function tally<R extends { provider: string }>(runs: readonly R[], same: (a: R, b: R) => boolean): Tally {
  assertRuns(runs)
  const n = runs.length
  const agrees: boolean[][] = runs.map(() => runs.map(() => true))
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const s = same(runs[i] as R, runs[j] as R)
      ;(agrees[i] as boolean[])[j] = s
      ;(agrees[j] as boolean[])[i] = s
    }
  }
  const providers = runs.map((r) => r.provider)
  const matchesAll = (i: number): boolean => (agrees[i] as boolean[]).every(Boolean)
  if (providers.every((_, i) => matchesAll(i))) return { verdict: 'agree', honest: providers, caught: [] }
  if (n === 2) return { verdict: 'needs_tiebreak', honest: [], caught: [] }
  // Three runs: the odd one out is caught only when the other two agree with each other.
  for (let i = 0; i < n; i++) {
    const others = [0, 1, 2].filter((k) => k !== i) as [number, number]
    const isolated = !agrees[i]?.[others[0]] && !agrees[i]?.[others[1]]
    if (isolated && agrees[others[0]]?.[others[1]]) {
      return { verdict: 'decided', honest: others.map((k) => providers[k] as string), caught: [providers[i] as string] }
    }
  }
  return { verdict: 'inconclusive', honest: providers.filter((_, i) => matchesAll(i)), caught: [] }
}

/** Compares every pair of runs' output archives with the job's comparator, then tallies. */
export async function tallyOutputs(
  runs: readonly RunResult[],
  comparator: ComparatorConfigInput,
): Promise<Tally & { comparisons: Comparison[] }> {
  assertRuns(runs)
  const comparisons: Comparison[] = []
  const results = new Map<string, boolean>()
  for (let i = 0; i < runs.length; i++) {
    for (let j = i + 1; j < runs.length; j++) {
      const [a, b] = [runs[i] as RunResult, runs[j] as RunResult]
      const compared = await compareOutputs(comparator, a.output, b.output)
      const sameExit = (a.exitCode ?? null) === (b.exitCode ?? null)
      const c = sameExit
        ? compared
        : { ...compared, equal: false, reason: `exit codes differ: ${a.exitCode ?? 'none'} vs ${b.exitCode ?? 'none'}` }
      comparisons.push(c)
      results.set(`${i}/${j}`, c.equal)
    }
  }
  const index = new Map(runs.map((r, i) => [r, i]))
  const t = tally(runs, (a, b) => results.get(`${index.get(a)}/${index.get(b)}`) === true)
  return { ...t, comparisons }
}
