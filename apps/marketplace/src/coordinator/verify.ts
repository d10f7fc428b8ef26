import type { SettlementOutcome } from '@kiln/escrow'
import type { Address, ComparatorConfig, JobState, ResultReceipt } from '@kiln/protocol'
import type { Job } from '@kiln/scheduler'
import { resolveVerification, tallyOutputs, type Tally } from '@kiln/verifier'
import type { CoordinatorContext } from './types.ts'

/** States in which a run may still produce a result (typed by member: a misspelt state does not compile). */
const PENDING: ReadonlySet<string> = new Set<JobState>(['queued', 'matched', 'locked', 'running'])
/** Own outcomes whose output is worth comparing: the program ran to its end on the provider. */
const COMPARABLE: ReadonlySet<string> = new Set<SettlementOutcome>(['verified', 'failed_client'])

const pending = (r: Job): boolean =>
  PENDING.has(r.state) || (r.state === 'settling' && r.settleAction === 'refund_requeue')

/**
 * Judges a job once every one of its runs is in. A job nobody re-ran settles on its own
 * receipt. Two runs that agree are both verified; two that differ get a tie-break on a third
 * independent provider; of three, the one the other two outvote is caught: its bond goes to
 * the client, and the client's result is the majority's. Idempotent: every step is a guarded
 * transition, so concurrent calls (two runs ending together, two coordinators) settle once.
 */
export async function verifyFamily(ctx: CoordinatorContext, rootId: string): Promise<void> {
  let runs = await ctx.store.family(rootId)
  const root = runs.find((r) => r.id === rootId)
  if (!root) return
  if (root.state !== 'verifying' && !pending(root) && runs.some((r) => r.id !== root.id && r.state === 'queued')) {
    // The job's own run ended without a result to check (failed, cancelled): re-runs not yet placed are dropped.
    for (const r of runs)
      if (r.state === 'queued' && r.id !== root.id)
        await ctx.store.transition(r.id, ['queued'], 'cancelled', "the job's own run ended without a result to check")
    runs = await ctx.store.family(rootId)
  }
  if (runs.some(pending)) {
    // A re-run waits for the job's own result; now it may be placed.
    if (root.state === 'verifying' && runs.some((r) => r.state === 'queued')) ctx.next.place()
    return
  }
  const waiting = runs.filter((r) => r.state === 'verifying')
  if (waiting.length === 0) return
  const results = waiting.filter((r) => COMPARABLE.has(r.settleOutcome ?? ''))
  const settleOwn = async (reason: string, event?: 'verified') => {
    for (const r of waiting)
      await settleRun(
        ctx,
        r,
        r.settleOutcome as SettlementOutcome,
        reason,
        event && results.includes(r) ? event : undefined,
      )
  }
  if (runs.length === 1 || results.length < 2) {
    if (runs.length > 1)
      await setVerdict(ctx, root, {
        verdict: 'unchecked',
        runs: results.length,
        caught: [],
        reason: 'fewer than two runs produced a result to compare',
      })
    if (runs.length === 1) return settleOwn(root.error ? `run failed: ${root.error.message}` : 'release to provider')
    return settleOwn('settled on its own receipt: no other run to compare it with')
  }
  const comparator = resolveVerification(
    root.spec.verification,
    root.lockAmount ?? 0,
    ctx.config.verification,
  ).comparator
  const t = await judge(ctx, results, comparator)
  if (t.verdict === 'needs_tiebreak') {
    if (runs.some((r) => r.role === 'tiebreak')) {
      // The tie-break ran and produced nothing comparable: nobody can be outvoted.
      await setVerdict(ctx, root, {
        verdict: 'inconclusive',
        runs: results.length,
        caught: [],
        reason: 'two runs differ and the tie-break produced no result',
      })
      return settleOwn('runs differ and no tie-break result: paid on their own receipts')
    }
    await addTiebreak(ctx, root)
    return
  }
  if (t.verdict === 'agree' || t.verdict === 'inconclusive') {
    await setVerdict(ctx, root, { verdict: t.verdict, runs: results.length, caught: [] })
    return settleOwn(
      t.verdict === 'agree'
        ? `verified: ${results.length} independent runs agree`
        : 'inconclusive: no two runs outvote the third; paid on their own receipts',
      t.verdict === 'agree' ? 'verified' : undefined,
    )
  }
  // decided: the odd one out is caught.
  const caught = waiting.filter((r) => t.caught.includes(r.provider ?? ''))
  const honest = results.find((r) => t.honest.includes(r.provider ?? ''))
  await setVerdict(ctx, root, {
    verdict: 'decided',
    runs: results.length,
    caught: t.caught,
    ...(caught.some((c) => c.id === root.id) && honest
      ? { reason: `the job's result is ${honest.outputDigest}, which the majority agreed on` }
      : {}),
  })
  if (honest && caught.some((c) => c.id === root.id)) {
    // The client gets the honest majority's output, not the cheater's.
    await ctx.store.update(root.id, {
      outputDigest: honest.outputDigest,
      outputBytes: honest.outputBytes,
      error: honest.error,
    })
  }
  for (const r of waiting) {
    if (caught.includes(r))
      await settleRun(
        ctx,
        r,
        'caught',
        `caught: ${t.honest.length} independent runs agree on a different result; the bond goes to the client`,
        'caught',
      )
    else
      await settleRun(
        ctx,
        r,
        r.settleOutcome as SettlementOutcome,
        'verified: the majority agrees with this run',
        results.includes(r) ? 'verified' : undefined,
      )
  }
}

/** Tallies the results: two agree when their exit codes match and the job's comparator calls their outputs equal. */
async function judge(ctx: CoordinatorContext, results: Job[], comparator: ComparatorConfig): Promise<Tally> {
  const outputs = await Promise.all(results.map((r) => readOutput(ctx, r)))
  const exitCode = (r: Job) => (r.receipt?.payload as ResultReceipt | undefined)?.exitCode ?? null
  return tallyOutputs(
    results.map((r, i) => ({ provider: r.provider ?? r.id, output: outputs[i] as Uint8Array, exitCode: exitCode(r) })),
    comparator,
  )
}

async function readOutput(ctx: CoordinatorContext, r: Job): Promise<Uint8Array> {
  if (!r.outputDigest || !ctx.artifacts.has(r.outputDigest)) return new Uint8Array()
  const parts: Buffer[] = []
  for await (const chunk of ctx.artifacts.open(r.outputDigest)) parts.push(chunk as Buffer)
  return Buffer.concat(parts)
}

async function addTiebreak(ctx: CoordinatorContext, root: Job): Promise<void> {
  const run = await ctx.store.addRun(
    {
      id: `${root.id}t1`,
      parentId: root.id,
      role: 'tiebreak',
      client: root.client,
      spec: root.spec,
      submitEnvelope: root.submitEnvelope,
      maxCost: root.maxCost,
      priority: 9,
    },
    `tie-break of ${root.id}: two runs differ`,
  )
  if (run) {
    ctx.log.info({ jobId: root.id, run: run.id }, 'two runs differ: placing a tie-break on a third provider')
    ctx.next.place()
  }
}

async function setVerdict(
  ctx: CoordinatorContext,
  root: Job,
  v: Omit<NonNullable<Job['verdict']>, 'at'>,
): Promise<void> {
  if (!root.verdict) await ctx.store.update(root.id, { verdict: { ...v, at: Date.now() } })
}

/** verifying → settling with this outcome, once; the reputation event goes with the move. */
async function settleRun(
  ctx: CoordinatorContext,
  r: Job,
  outcome: SettlementOutcome,
  reason: string,
  event?: 'verified' | 'caught',
): Promise<void> {
  const moved = await ctx.store.transition(
    r.id,
    ['verifying'],
    'settling',
    reason,
    { settleOutcome: outcome, settleAction: outcome === 'caught' ? 'slash' : 'release' },
    { outcome },
  )
  if (!moved) return
  if (event && r.provider) {
    await ctx.inventory
      .recordOutcome(r.provider as Address, { kind: event, at: Date.now() })
      .catch((err: unknown) => ctx.log.warn({ err: String(err) }, "could not record the provider's reputation"))
  }
  if (outcome === 'caught')
    ctx.log.warn(
      { jobId: r.parentId ?? r.id, run: r.id, provider: r.provider },
      'provider caught: its output was outvoted',
    )
  await ctx.next.settle(r)
}
