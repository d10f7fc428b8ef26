import type { Channel } from '@kiln/mesh'
import {
  isKilnError,
  Kind,
  KilnError,
  KilnErrorCode,
  OUTPUT_CHUNK_BYTES,
  parseOrThrow,
  Protocol,
  ProviderFrame,
  seal,
  type Address,
  type KilnErrorName,
  type Lease,
  type ResultReceipt,
} from '@kiln/protocol'
import type { SettlementOutcome } from '@kiln/escrow'
import type { Job } from '@kiln/scheduler'
import { checkReceipt, eventFromReceipt } from '@kiln/verifier'
import { recordOutcome } from './reputation.ts'
import { failRun } from './lease-outcome.ts'
import { escrowIdOf, moneyOf, type CoordinatorContext } from './types.ts'
import { verifyFamily } from './verify.ts'

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
  const provider = job.provider as Address
  const lease = leaseOf(ctx, job)
  let channel: Channel | undefined
  ctx.active.add(job.id)
  try {
    const addrs = ctx.inventory.get(provider)?.addrs
    channel = await ctx.mesh.open(provider, Protocol.job, addrs ? { addrs } : {})
    await channel.sendJson({ t: 'lease', envelope: seal(ctx.arbiter, Kind.lease, lease, { ttlMs: 120_000 }) })
    const stopWatch = watchForCancel(ctx, job.id, channel)
    const receipt = await follow(ctx, channel, lease, job.id).finally(stopWatch)
    await channel.sendJson({ t: 'ack' }).catch(() => {})
    await finishRun(ctx, job, receipt)
  } catch (err) {
    const e = isKilnError(err)
      ? err
      : new KilnError('PEER_UNREACHABLE', `lost the provider during the run: ${(err as Error).message}`)
    ctx.log.warn({ jobId: job.id, provider, code: e.code, err: e.message }, 'run failed')
    await failRun(ctx, job, e)
  } finally {
    ctx.active.delete(job.id)
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

/**
 * The lease for a run. A re-run's lease names the job's public id, like the job's own run:
 * the provider cannot tell which one it holds, nor whether there is another.
 */
export function leaseOf(ctx: CoordinatorContext, job: Job): Lease {
  return {
    jobId: job.parentId ?? job.id,
    client: job.client as Address,
    provider: job.provider as Address,
    arbiter: ctx.arbiter.address,
    spec: job.spec,
    pricePerHour: job.pricePerHour ?? 0,
    lockAmount: job.lockAmount ?? 0,
    mint: ctx.mint,
    multisig: job.multisig as Address,
    vault: job.vault as Address,
    escrowId: escrowIdOf(ctx, job),
    startBy: Date.now() + 60_000,
    bond: job.bond ?? 0,
    feeBps: job.feeBps ?? 0,
  }
}

/**
 * Reads provider frames up to the receipt: stores logs, receives and checks the output.
 * `runId` is the row the run is kept in (a re-run's own id; the lease names the job's).
 */
export async function follow(
  ctx: CoordinatorContext,
  ch: Channel,
  lease: Lease,
  runId: string,
): Promise<ResultReceipt> {
  const silence = ctx.config.providerSilenceMs
  let output: Uint8Array | undefined
  for (;;) {
    const raw = await ch.nextJson(silence)
    if (raw === undefined)
      throw new KilnError('PEER_UNREACHABLE', 'the provider closed the job stream before sending a receipt')
    const frame = parseOrThrow(ProviderFrame, raw, 'provider frame')
    switch (frame.t) {
      case 'accepted':
        ctx.log.info({ jobId: runId, provider: lease.provider }, 'lease accepted')
        break
      case 'refused':
        // A provider that cannot post the bond will not be able to next time either: go elsewhere.
        if (frame.error.kind === 'INSUFFICIENT_FUNDS')
          throw new KilnError('BOND_NOT_POSTED', `provider cannot post its bond: ${frame.error.message}`, {
            providerError: frame.error,
          })
        throw new KilnError('LEASE_REFUSED', `provider refused the lease: ${frame.error.message}`, {
          providerError: frame.error,
        })
      case 'started':
        await ctx.store.transition(runId, ['locked'], 'running', 'container started', { startedAt: frame.at })
        break
      case 'log':
        await ctx.store.appendLogs(runId, frame.seq, frame.chunks)
        break
      case 'output': {
        if (frame.bytes > lease.spec.outputs.maxBytes)
          throw new KilnError('OUTPUT_TOO_LARGE', `output of ${frame.bytes} bytes exceeds the job's limit`)
        if (frame.chunks !== Math.ceil(frame.bytes / OUTPUT_CHUNK_BYTES))
          throw new KilnError('PAYLOAD_INVALID', 'output chunk count does not match its size')
        const buf = Buffer.alloc(frame.bytes)
        let at = 0
        for (let i = 0; i < frame.chunks; i++) {
          const chunk = await ch.next(silence)
          if (!chunk || at + chunk.byteLength > frame.bytes)
            throw new KilnError('PAYLOAD_INVALID', 'output stream ended early or overran its size')
          buf.set(chunk, at)
          at += chunk.byteLength
        }
        if (at !== frame.bytes) throw new KilnError('PAYLOAD_INVALID', 'output shorter than announced')
        output = buf
        break
      }
      case 'running':
        throw new KilnError('JOB_WRONG_STATE', 'the run is still going', { running: true })
      case 'lost':
        throw new KilnError('PEER_UNREACHABLE', `the provider has no result: ${frame.error.message}`, {
          providerError: frame.error,
          lost: true,
        })
      case 'receipt': {
        const { receipt, envelope } = checkReceipt(frame.envelope, { lease, output, nonces: ctx.nonces })
        await checkBond(ctx, lease)
        if (output && receipt.outputDigest) ctx.artifacts.put(output, receipt.outputDigest)
        await ctx.store.update(runId, {
          receipt: envelope,
          outputDigest: receipt.outputDigest,
          outputBytes: receipt.outputBytes,
          endedAt: receipt.endedAt,
        })
        return receipt
      }
    }
  }
}

/**
 * The provider posts its bond in the run's vault while its container starts, and sends its
 * receipt only once the bond is in; a run whose bond is not there by then is not paid:
 * refunded (what bond there is goes back) and placed on another provider.
 */
async function checkBond(ctx: CoordinatorContext, lease: Lease): Promise<void> {
  if (lease.bond === 0) return
  const status = await ctx.escrow.settlementStatus({ jobId: lease.escrowId, client: lease.client })
  if (status.balance < lease.lockAmount + lease.bond) {
    const m = moneyOf(ctx)
    throw new KilnError(
      'BOND_NOT_POSTED',
      `the provider accepted the lease but its bond of ${m.amount(lease.bond)} is not in the vault (it holds ${m.amount(status.balance)}, the client's lock is ${m.amount(lease.lockAmount)})`,
      { vault: lease.vault, bond: lease.bond },
    )
  }
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
  await recordOutcome(ctx, job.provider as Address, eventFromReceipt(receipt), {
    containerSeconds: receipt.containerSeconds,
  }).catch((err: unknown) => ctx.log.warn({ err: String(err) }, "could not record the provider's reputation"))
  if (receipt.startedAt !== null) {
    const ran = receipt.endedAt - receipt.startedAt
    ctx.placement.avgRunMs = Math.round(ctx.placement.avgRunMs * 0.8 + ran * 0.2)
  }
  const verifying = await ctx.store.transition(
    job.id,
    ['locked', 'running'],
    'verifying',
    'receipt verified: signature and output digest match',
    { settleOutcome: outcome, error },
    { exitCode: receipt.exitCode, outputDigest: receipt.outputDigest },
  )
  if (!verifying) return ctx.log.warn({ jobId: job.id }, 'job moved on while its receipt was checked; leaving it')
  await verifyFamily(ctx, job.parentId ?? job.id)
}

const byCode = new Map<string, KilnErrorName>(Object.entries(KilnErrorCode).map(([k, v]) => [v, k as KilnErrorName]))
function kindOf(code: string): KilnErrorName {
  return byCode.get(code) ?? 'CONTAINER_FAILED'
}
