import type { JobView, RunView } from '@kiln/api'
import { checkLock, tokenBalance } from '@kiln/escrow'
import {
  DEFAULT_MAX_ENVELOPE_BYTES,
  MAX_SECRETS_ENVELOPE_BYTES,
  CancelRequest,
  CosignRequest,
  Kind,
  KilnError,
  LockRequest,
  maxLeaseCost,
  RunsRequest,
  SubmitRequest,
  TERMINAL_STATES,
  type Address,
  type JobSpec,
  type JobState,
} from '@kiln/protocol'
import { newJobId, type Job } from '@kiln/scheduler'
import { decideSpotCheck, resolveVerification } from '@kiln/verifier'
import { submitClientCosign } from './settle.ts'
import { resolveInputs } from '../inputs/resolve.ts'
import { checkSealedSecrets } from '../inputs/secrets.ts'
import { openSigned } from './signed.ts'
import { escrowIdOf, moneyOf, runDeadline, vaultStatus, type CoordinatorContext } from './types.ts'
import { runView, viewOf } from './views.ts'

const queues = new Map<string, Promise<unknown>>()
function perClient<T>(client: string, fn: () => Promise<T>): Promise<T> {
  const prev = queues.get(client) ?? Promise.resolve()
  const next = prev.catch(() => {}).then(fn)
  queues.set(client, next)
  void next
    .finally(() => {
      if (queues.get(client) === next) queues.delete(client)
    })
    .catch(() => {})
  return next
}

/** A public job id's row; re-runs are not jobs of their own to anyone but the coordinator. */
export async function publicJob(ctx: CoordinatorContext, jobId: string): Promise<Job> {
  const job = await ctx.store.get(jobId)
  if (!job || job.parentId) throw new KilnError('JOB_NOT_FOUND', `no job ${jobId}`, { jobId })
  return job
}

/**
 * A job as its owner reads it. A job's details, logs, runs and outputs are its owner's: a
 * request from another reader is refused (one with no reader never gets here: the API refuses it).
 */
export async function ownedJob(ctx: CoordinatorContext, jobId: string, reader: Address): Promise<Job> {
  const job = await publicJob(ctx, jobId)
  if (job.client !== reader)
    throw new KilnError(
      'NOT_JOB_OWNER',
      `${reader} does not own ${job.id}: only its owner can read its details, logs and outputs`,
      { jobId: job.id },
    )
  return job
}

/** Signed by the owner: every run of its job, with what each needs from the client (a lock, a co-signature). */
export async function jobRuns(ctx: CoordinatorContext, raw: unknown): Promise<RunView[]> {
  const { payload, signer } = await openSigned(ctx, raw, Kind.runs, RunsRequest)
  const job = await publicJob(ctx, payload.jobId)
  if (job.client !== signer) throw new KilnError('NOT_JOB_OWNER', `${signer} does not own ${job.id}`, { jobId: job.id })
  return (await ctx.store.family(job.id)).map((r) => runView(ctx, r))
}

/** The run of a job an escrow id names (its own run without one). */
async function runOf(ctx: CoordinatorContext, job: Job, escrowId: string | undefined): Promise<Job> {
  if (escrowId === undefined || escrowId === escrowIdOf(ctx, job)) return job
  const run = (await ctx.store.family(job.id)).find((r) => r.attempt > 0 && escrowIdOf(ctx, r) === escrowId)
  if (!run)
    throw new KilnError('JOB_WRONG_STATE', `job ${job.id} has no current run with escrow id ${escrowId}`, {
      jobId: job.id,
      escrowId,
    })
  return run
}

/**
 * A spec's inputs as the lease will carry them: `upload` sources only among the client's own
 * uploads (someone else's digest reads as not found), `job:` sources given the digest of what
 * they name (inputs/resolve.ts).
 */
async function submittedInputs(ctx: CoordinatorContext, spec: JobSpec, client: Address): Promise<JobSpec> {
  if (spec.inputs.length === 0) return spec
  const inputs = ctx.inputs
  if (!inputs)
    throw new KilnError('INPUT_UNAVAILABLE', 'this marketplace keeps no inputs', {
      issues: [{ path: 'inputs', message: 'not taken here', expected: 'no inputs' }],
    })
  for (const [i, input] of spec.inputs.entries())
    if (input.source === 'upload' && !(await inputs.owns(client, input.sha256 ?? '')))
      throw new KilnError('ARTIFACT_NOT_FOUND', `inputs[${i}]: no upload of yours has sha256 ${input.sha256}`, {
        issues: [
          {
            path: `inputs.${i}.sha256`,
            message: 'not uploaded by you',
            expected: 'the digest of a file you uploaded (kiln submit uploads path: inputs)',
          },
        ],
      })
  return resolveInputs(spec, client, {
    getJob: (id) => ctx.store.get(id),
    artifacts: ctx.artifacts,
    tmpDir: inputs.tmpDir,
  })
}

/**
 * Accepts a signed job spec. Checks, before anything is stored or queued: the signature,
 * the spec (every bad field named), and that the client holds the job's maximum cost.
 */
export async function submitJob(ctx: CoordinatorContext, raw: unknown): Promise<{ jobId: string; maxCost: number }> {
  const { payload, signer, envelope } = await openSigned(ctx, raw, Kind.submit, SubmitRequest)
  const spec = await submittedInputs(ctx, payload.spec, signer)
  const maxCost = maxLeaseCost(spec.maxPricePerHour, spec.timeoutSec)
  const { p } = resolveVerification(spec.verification, maxCost, ctx.config.verification)
  // Every job that may be re-run must be able to pay for the re-run: were only the re-run
  // jobs checked for it, a provider reading the client's balance could tell they are not.
  const required = p > 0 ? 2 * maxCost : maxCost
  // One client's submissions are checked one at a time, so a burst cannot over-commit its wallet.
  const job = await perClient(signer, async () => {
    const [balance, reserved] = await Promise.all([
      tokenBalance(ctx.connection, ctx.mint, signer),
      ctx.store.reservedFor(signer),
    ])
    if (balance - reserved < required) {
      const m = moneyOf(ctx)
      throw new KilnError(
        'INSUFFICIENT_FUNDS',
        `the job may cost up to ${m.amount(maxCost)} (its max price ${m.rate(spec.maxPricePerHour)} for ${spec.timeoutSec} s)${p > 0 ? `, ${m.amount(required)} with room for a spot-check re-run (p=${p})` : ''}; ${signer} holds ${m.amount(balance)}, of which ${m.amount(reserved)} is reserved by its jobs not yet locked: it needs ${m.amount(required - (balance - reserved))} more`,
        { balance, reserved, required, address: signer },
      )
    }
    const id = newJobId()
    // Drawn from a secret only the marketplace holds: never sent to a provider nor shown until the job ends.
    const spotCheck = decideSpotCheck(id, ctx.config.verifySecret, p, envelope.nonce)
    const common = { client: signer, spec, submitEnvelope: envelope, maxCost, priority: spec.priority }
    return ctx.store.create(
      { id, ...common, spotCheck },
      spotCheck ? [{ id: `${id}r1`, parentId: id, role: 'replica', ...common }] : [],
    )
  })
  // Only worth a pass now if some provider could take it; otherwise the periodic pass will.
  if (ctx.inventory.list().some((c) => c.advert.available)) ctx.next.place()
  ctx.log.info({ jobId: job.id, client: signer, image: spec.image, maxCost }, 'job submitted')
  return { jobId: job.id, maxCost }
}

/** The client says it locked the funds; we check the chain ourselves before the lease goes out. */
export async function confirmLock(ctx: CoordinatorContext, raw: unknown): Promise<JobView> {
  // A lock may carry the sealed secrets for the run's provider beside the request itself.
  const { payload, signer } = await openSigned(ctx, raw, Kind.lock, LockRequest, {
    maxBytes: DEFAULT_MAX_ENVELOPE_BYTES + MAX_SECRETS_ENVELOPE_BYTES,
  })
  const root = await publicJob(ctx, payload.jobId)
  if (root.client !== signer)
    throw new KilnError('NOT_JOB_OWNER', `${signer} does not own ${root.id}`, { jobId: root.id })
  const job = await runOf(ctx, root, payload.escrowId)
  if (job.state !== 'matched') {
    if (job.lockSignature === payload.signature) return viewOf(ctx, root)
    throw new KilnError('JOB_WRONG_STATE', `job ${job.id} is ${job.state}, not waiting for a lock`, {
      state: job.state,
    })
  }
  // Checked before the chain: a box the provider could not open would only fail the run there.
  const sealed = checkSealedSecrets(payload.secrets, {
    client: job.client as Address,
    provider: job.provider as Address,
    jobId: root.id,
    escrowId: escrowIdOf(ctx, job),
    spec: job.spec,
  })
  const lock = await checkLock(ctx.connection, {
    jobId: escrowIdOf(ctx, job),
    mint: ctx.mint,
    vault: job.vault as Address,
    client: job.client as Address,
    provider: job.provider as Address,
    arbiter: ctx.arbiter.address,
    amount: job.lockAmount ?? 0,
  })
  if (!lock.ok)
    throw new KilnError('ESCROW_NOT_FUNDED', `the vault is not funded: ${lock.reason}`, {
      vault: job.vault,
      required: job.lockAmount,
    })
  const locked = await ctx.store.transition(
    job.id,
    ['matched'],
    'locked',
    `funds locked on chain (${payload.signature})`,
    { lockSignature: payload.signature, runDeadline: runDeadline(job.spec.timeoutSec) },
  )
  if (locked) {
    if (sealed) ctx.sealed.put(locked.id, sealed)
    ctx.next.run(locked)
  }
  return viewOf(ctx, await ctx.store.mustGet(root.id))
}

/**
 * Cancels a job from any state before its result is in. Not yet funded: it just ends. Funded
 * but not running: a full refund. Running: the provider stops the container and is paid for
 * the seconds it ran; the rest is refunded. Either way the job ends `cancelled`.
 */
export async function cancelJob(ctx: CoordinatorContext, raw: unknown): Promise<JobView> {
  const { payload, signer } = await openSigned(ctx, raw, Kind.cancel, CancelRequest)
  const job = await publicJob(ctx, payload.jobId)
  if (job.client !== signer) throw new KilnError('NOT_JOB_OWNER', `${signer} does not own ${job.id}`, { jobId: job.id })
  if (TERMINAL_STATES.includes(job.state as JobState) || job.cancelRequestedAt !== null) return viewOf(ctx, job)
  ctx.book.unwait(job.id)
  // Every run of the job that has not delivered its result stops: re-runs and tie-breaks too.
  const runs = job.spotCheck ? await ctx.store.family(job.id) : [job]
  let stopped = 0
  for (const run of runs) if (await cancelRun(ctx, run)) stopped++
  if (stopped === 0) {
    throw new KilnError(
      'JOB_WRONG_STATE',
      `job ${job.id} is ${(await ctx.store.mustGet(job.id)).state}: its result is in and it is being settled`,
      { state: job.state },
    )
  }
  if (runs.length > 1) await ctx.next.verify(job.id)
  return viewOf(ctx, await ctx.store.mustGet(job.id))
}

/** Stops one run; false when its result is already in (it settles as it is). */
async function cancelRun(ctx: CoordinatorContext, run: Job): Promise<boolean> {
  const now = Date.now()
  if (run.state === 'queued') {
    return Boolean(
      await ctx.store.transition(run.id, ['queued'], 'cancelled', 'cancelled by the client', {
        cancelRequestedAt: now,
      }),
    )
  }
  if (run.state === 'matched') {
    // The client may have locked just before cancelling: refund whatever reached the vault.
    const status = await vaultStatus(ctx, run)
    const c =
      status.exists && status.balance > 0
        ? await ctx.store.transition(run.id, ['matched'], 'settling', 'cancelled by the client; refunding the vault', {
            cancelRequestedAt: now,
            settleAction: 'refund',
            settleOutcome: 'cancelled',
            paidToProvider: 0,
            refundedToClient: status.balance,
          })
        : await ctx.store.transition(
            run.id,
            ['matched'],
            'cancelled',
            'cancelled by the client before funds were locked',
            { cancelRequestedAt: now },
          )
    if (c?.state === 'settling') await ctx.queues.enqueue('settle', c.id, { key: `a${c.attempt}` })
    return Boolean(c)
  }
  if (run.state === 'locked' || run.state === 'running') {
    // The process following the run sees this and tells the provider to stop.
    await ctx.store.update(run.id, { cancelRequestedAt: now })
    return true
  }
  return false
}

/** The client co-signs a settlement the provider could not (a refund) or would not (a slash) sign. */
export async function cosignRefund(ctx: CoordinatorContext, raw: unknown): Promise<JobView> {
  const { payload, signer } = await openSigned(ctx, raw, Kind.cosign, CosignRequest)
  const root = await publicJob(ctx, payload.jobId)
  if (root.client !== signer)
    throw new KilnError('NOT_JOB_OWNER', `${signer} does not own ${root.id}`, { jobId: root.id })
  await submitClientCosign(ctx, await runOf(ctx, root, payload.escrowId), payload.transaction)
  return viewOf(ctx, await ctx.store.mustGet(root.id))
}

/**
 * Puts every unfinished step back on the queues. The database is the source of truth and
 * every step is idempotent (BullMQ dedupes by id), so this runs at start and periodically:
 * a Redis that lost its data (restarted without persistence) loses no job.
 */
export async function resync(ctx: CoordinatorContext): Promise<void> {
  for (const job of await ctx.store.list({
    states: ['queued', 'matched', 'locked', 'running', 'verifying', 'settling'],
    limit: 10_000,
    runs: true,
  })) {
    // Queued jobs need no task: every placement pass reads them from the database.
    if (job.state === 'matched') await ctx.queues.enqueue('lock-timeout', job.id, { key: String(job.attempt) })
    else if (job.state === 'settling') await ctx.queues.enqueue('settle', job.id, { key: `a${job.attempt}` })
  }
}
