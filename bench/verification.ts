/**
 * `npm run bench:verification`: a seeded simulation of a provider population (10% cheaters
 * who alter their output on some runs) under the real spot-check policy and tally, for
 * p = 0.05, 0.1 and 0.2 and for full replication in the same run. It reports the compute
 * overhead (all container-seconds, replicas and tie-breaks included, over the useful ones)
 * and how many cheaters are caught within their first 20 cheats.
 */
import { createHash } from 'node:crypto'
import { decideSpotCheck, guarantee, tally } from '@kiln/verifier'
import { mulberry32 } from '../test/support/prng.ts'

const SEED = Number(process.env.BENCH_SEED ?? 20_240_601)
const PROVIDERS = Number(process.env.BENCH_PROVIDERS ?? 1_000)
/** Independent populations per policy: 100 cheaters each is too few for a rate. */
const POPULATIONS = Number(process.env.BENCH_POPULATIONS ?? 5)
/** Jobs per population at least; it runs on until every cheater is caught or has cheated K times. */
const MIN_JOBS = Number(process.env.BENCH_JOBS ?? 50_000)
const CHEATER_SHARE = 0.1
const CHEAT_PROBABILITY = 0.5
const K = 20

const prng = mulberry32

/** Job length: log-normal, median 5 minutes, from seconds to the hour cap. */
function duration(rand: () => number): number {
  const z = Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand())
  return Math.min(3_600, Math.max(1, 300 * Math.exp(z)))
}

interface Provider {
  id: string
  cheater: boolean
  cheats: number
  caughtAtCheat: number | null
  banned: boolean
}

interface Result {
  label: string
  p: number
  jobs: number
  overhead: number
  replicas: number
  tiebreaks: number
  detect: number
  cheaters: number
  checkedCheatShare: number
  acceptedBadResults: number
  honestCaught: number
  inconclusive: number
}

interface Counts {
  jobs: number
  useful: number
  total: number
  replicas: number
  tiebreaks: number
  cheatRuns: number
  checkedCheats: number
  acceptedBad: number
  honestCaught: number
  inconclusive: number
  known: number
  detected: number
}

/** One population under one policy, until every cheater's first K cheats are decided. */
function population(p: number, seed: number): Counts {
  const rand = prng(seed)
  const secret = createHash('sha256').update(`bench-secret-${seed}`).digest()
  const providers: Provider[] = Array.from({ length: PROVIDERS }, (_, i) => ({
    id: `prov${i}`,
    cheater: rand() < CHEATER_SHARE,
    cheats: 0,
    caughtAtCheat: null,
    banned: false,
  }))
  const byId = new Map(providers.map((pr) => [pr.id, pr]))
  const active = [...providers]
  let useful = 0,
    total = 0,
    replicas = 0,
    tiebreaks = 0,
    cheatRuns = 0,
    checkedCheats = 0,
    acceptedBad = 0,
    honestCaught = 0,
    inconclusive = 0,
    runCounter = 0

  const pick = (exclude: readonly string[]): Provider => {
    for (;;) {
      const c = active[Math.floor(rand() * active.length)] as Provider
      if (!exclude.includes(c.id)) return c
    }
  }
  const run = (pr: Provider, seconds: number) => {
    total += seconds
    runCounter++
    const cheats = pr.cheater && rand() < CHEAT_PROBABILITY
    if (cheats) {
      pr.cheats++
      cheatRuns++
    }
    // A cheat is a wrong output of its own: cheaters do not collude on a shared wrong answer.
    return { provider: pr.id, output: cheats ? `bad-${runCounter}` : 'good', cheats }
  }
  const same = (a: { output: string }, b: { output: string }) => a.output === b.output
  const ban = (id: string) => {
    const pr = byId.get(id) as Provider
    if (!pr.cheater) honestCaught++
    if (pr.banned) return
    pr.banned = true
    pr.caughtAtCheat = pr.cheats
    active.splice(active.indexOf(pr), 1)
  }

  const cheaters = providers.filter((pr) => pr.cheater)
  const undecided = () => cheaters.some((pr) => pr.caughtAtCheat === null && pr.cheats < K)
  let j = 0
  for (; j < MIN_JOBS || j % 1_000 !== 0 || undecided(); j++) {
    const seconds = duration(rand)
    useful += seconds
    const primary = run(pick([]), seconds)
    if (!decideSpotCheck(`job_${j.toString(36).padStart(12, '0')}`, secret, p)) {
      if (primary.cheats) acceptedBad++
      continue
    }
    replicas++
    const replica = run(pick([primary.provider]), seconds)
    checkedCheats += (primary.cheats ? 1 : 0) + (replica.cheats ? 1 : 0)
    let t = tally([primary, replica], same)
    if (t.verdict === 'needs_tiebreak') {
      tiebreaks++
      const third = run(pick([primary.provider, replica.provider]), seconds)
      if (third.cheats) checkedCheats++
      t = tally([primary, replica, third], same)
      if (t.verdict === 'inconclusive') inconclusive++
    }
    for (const id of t.caught) ban(id)
    // The client takes the majority's output when there is one, the primary's otherwise.
    if (t.verdict === 'inconclusive' && primary.cheats) acceptedBad++
  }

  const detected = cheaters.filter((pr) => pr.caughtAtCheat !== null && pr.caughtAtCheat <= K).length
  return {
    jobs: j,
    useful,
    total,
    replicas,
    tiebreaks,
    cheatRuns,
    checkedCheats,
    acceptedBad,
    honestCaught,
    inconclusive,
    known: cheaters.length,
    detected,
  }
}

function simulate(label: string, p: number): Result {
  const ts = Array.from({ length: POPULATIONS }, (_, i) => population(p, SEED + i))
  const sum = (k: keyof Counts) => ts.reduce((n, t) => n + t[k], 0)
  return {
    label,
    p,
    jobs: sum('jobs'),
    overhead: sum('total') / sum('useful'),
    replicas: sum('replicas'),
    tiebreaks: sum('tiebreaks'),
    detect: sum('detected') / sum('known'),
    cheaters: sum('known'),
    checkedCheatShare: sum('cheatRuns') ? sum('checkedCheats') / sum('cheatRuns') : 0,
    acceptedBadResults: sum('acceptedBad'),
    honestCaught: sum('honestCaught'),
    inconclusive: sum('inconclusive'),
  }
}

const started = performance.now()
const results = [
  simulate('p=0.05', 0.05),
  simulate('p=0.1', 0.1),
  simulate('p=0.2', 0.2),
  simulate('full replication', 1),
]
const ms = performance.now() - started

const out = (s: string) => process.stdout.write(`${s}\n`)
out(
  `${POPULATIONS} populations of ${PROVIDERS} providers (${CHEATER_SHARE * 100}% cheaters, each cheating on ${CHEAT_PROBABILITY * 100}% of its runs), seed ${SEED}, ${(ms / 1000).toFixed(1)} s\n`,
)
const head = [
  'policy',
  'jobs',
  'overhead',
  'replicas',
  'tie-breaks',
  `detect_${K}`,
  `1-(1-p)^${K}`,
  'cheats checked',
  `1-(1-q)^${K}`,
  'bad accepted',
  'honest caught',
  'inconclusive',
]
const rows = results.map((r) => [
  r.label,
  String(r.jobs),
  `${r.overhead.toFixed(3)}x`,
  String(r.replicas),
  String(r.tiebreaks),
  `${r.detect.toFixed(3)} (${r.cheaters})`,
  (1 - (1 - r.p) ** K).toFixed(3),
  `q=${r.checkedCheatShare.toFixed(3)}`,
  (1 - (1 - r.checkedCheatShare) ** K).toFixed(3),
  String(r.acceptedBadResults),
  String(r.honestCaught),
  String(r.inconclusive),
])
const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)))
for (const r of [head, ...rows]) out(r.map((c, i) => c.padEnd(widths[i] as number)).join('  '))
out('')
out('overhead: all container-seconds (primaries, replicas, tie-breaks) over one run per job.')
out(`detect_${K}: share of cheaters caught within their first ${K} cheats. 1-(1-p)^${K} is the guarantee for`)
out('cheats on primary runs; a cheater placed as a replica or tie-break is checked every time, so the')
out('measured share q of cheats that met a second run is above p and detection beats the formula.')
const g = guarantee({ p: 0.1, bond: 1_000_000, pricePerJob: 100_000, k: K })
out(`\nquote at p=0.1, bond 1.00, price 0.10:\n  ${g.quoteLines.join('\n  ')}\n`)

const at = results[1] as Result
const full = results[3] as Result
out(
  `verification: p=0.1 overhead=${at.overhead.toFixed(3)} detect_20=${at.detect.toFixed(3)} full_replication_overhead=${full.overhead.toFixed(1)}`,
)
