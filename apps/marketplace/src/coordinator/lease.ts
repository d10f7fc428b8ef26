import type { Channel } from '@kiln/mesh'
import {
  isKilnError,
  Kind,
  KilnError,
  KilnErrorCode,
  Protocol,
  seal,
  type Address,
  type KilnErrorName,
  type ResultReceipt,
} from '@kiln/protocol'
import type { SettlementOutcome } from '@kiln/escrow'
import type { Job } from '@kiln/scheduler'
import { eventFromReceipt } from '@kiln/verifier'
import { follow, leaseOf } from './stream.ts'
import type { CoordinatorContext } from './types.ts'

/** Errors that are the provider's fault: it is paid nothing for such a run. */
const PROVIDER_FAULTS: ReadonlySet<KilnErrorName> = new Set<KilnErrorName>([
  'IMAGE_NOT_FOUND',
  'DOCKER_UNAVAILABLE',
  'LEASE_REFUSED',
  'PEER_UNREACHABLE',
  'ESCROW_NOT_FUNDED',
  'NETWORK_UNAVAILABLE',
])

/**
 * Delivers the lease to the provider and follows the run to its receipt: logs are stored as
 * they come, the output is received and checked against the signed receipt, and the job
 * moves on to settlement. Any failure also ends in settlement (a refund), never in limbo.
 */
export async function runLease(ctx: CoordinatorContext, job: Job): Promise<void> {
  ctx.following.claim(job.id)
  try {
    const failure = await deliver(ctx, job)
    if (!failure) return
    ctx.log.warn({ jobId: job.id, provider: job.provider, code: failure.code, err: failure.message }, 'run failed')
    await ctx.next.fail(job, failure)
  } finally {
    ctx.following.release(job.id)
    ctx.sealed.drop(job.id)
  }
}

/** Sends the lease and follows the job stream: undefined once the run is `verifying`, else why it failed. */
async function deliver(ctx: CoordinatorContext, job: Job): Promise<KilnError | undefined> {
  const provider = job.provider as Address
  const lease = leaseOf(ctx, job)
  let channel: Channel | undefined
  try {
    const addrs = ctx.inventory.get(provider)?.addrs
    channel = await ctx.mesh.open(provider, Protocol.job, addrs ? { addrs } : {})
    await channel.sendJson({ t: 'lease', envelope: seal(ctx.arbiter, Kind.lease, lease, { ttlMs: 120_000 }) })
    const stopWatch = watchForCancel(ctx, job.id, channel)
    const end = await follow(ctx, channel, lease, job.id).finally(stopWatch)
    // The provider was just handed this lease: saying it has no result, or that a run is still going, it has lost it.
    if (end.kind === 'lost') return end.error
    if (end.kind === 'running') return new KilnError('JOB_WRONG_STATE', 'the run is still going', { running: true })
    await channel.sendJson({ t: 'ack' }).catch(() => {})
    await finishRun(ctx, job, end.receipt)
    return undefined
  } catch (err) {
    return isKilnError(err)
      ? err
      : new KilnError('PEER_UNREACHABLE', `lost the provider during the run: ${(err as Error).message}`)
  } finally {
    await channel?.close().catch(() => {})
  }
}

/** Tells the provider to stop when the client cancels (whichever coordinator took the request). */
function watchForCancel(ctx: CoordinatorContext, jobId: string, ch: Channel): () => void {
  let sent = false
  const timer = setInterval(() => {
    void ctx.store
      .get(jobId)
      .then(async (j) => {
        if (!sent && j?.cancelRequestedAt) {
          sent = true
          await ch.sendJson({ t: 'cancel' })
          ctx.log.info({ jobId }, 'asked the provider to stop the run: cancelled by the client')
        }
      })
      .catch(() => {})
  }, 1000)
  timer.unref()
  return () => clearInterval(timer)
}

/** How a run's own receipt settles, before any comparison with other runs. */
function outcomeOf(job: Job, receipt: ResultReceipt): SettlementOutcome {
  if (receipt.error && PROVIDER_FAULTS.has(kindOf(receipt.error.code))) return 'failed_provider'
  if (receipt.status === 'succeeded') return 'verified'
  if (job.cancelRequestedAt !== null) return 'cancelled'
  return receipt.startedAt === null ? 'failed_provider' : 'failed_client'
}

/**
 * The run produced a checked receipt (signature, output digest): it waits in `verifying`
 * with its own outcome until every run of the job is in, then the family is judged
 * together (verify.ts): a job nobody re-runs settles at once.
 */
export async function finishRun(ctx: CoordinatorContext, job: Job, receipt: ResultReceipt): Promise<void> {
  const outcome = outcomeOf(job, receipt)
  const error =
    receipt.status === 'failed'
      ? {
          code: receipt.error?.code ?? 'KILN_5002',
          kind: kindOf(receipt.error?.code ?? 'KILN_5002'),
          message: receipt.error?.message ?? `exit code ${receipt.exitCode}`,
        }
      : null
  await ctx.inventory
    .recordOutcome(job.provider as Address, eventFromReceipt(receipt), { containerSeconds: receipt.containerSeconds })
    .catch((err: unknown) => ctx.log.warn({ err: String(err) }, "could not record the provider's reputation"))
  if (receipt.startedAt !== null) ctx.book.ran(receipt.endedAt - receipt.startedAt)
  const verifying = await ctx.store.transition(
    job.id,
    ['locked', 'running'],
    'verifying',
    'receipt verified: signature and output digest match',
    { settleOutcome: outcome, error },
    { exitCode: receipt.exitCode, outputDigest: receipt.outputDigest },
  )
  if (!verifying) return ctx.log.warn({ jobId: job.id }, 'job moved on while its receipt was checked; leaving it')
  await ctx.next.verify(job.parentId ?? job.id)
}

const byCode = new Map<string, KilnErrorName>(Object.entries(KilnErrorCode).map(([k, v]) => [v, k as KilnErrorName]))
function kindOf(code: string): KilnErrorName {
  return byCode.get(code) ?? 'CONTAINER_FAILED'
}
