import type { Channel } from '@kiln/mesh'
import {
  KilnError,
  OUTPUT_CHUNK_BYTES,
  parseOrThrow,
  ProviderFrame,
  type Address,
  type Lease,
  type ResultReceipt,
} from '@kiln/protocol'
import type { Job } from '@kiln/scheduler'
import { checkReceipt } from '@kiln/verifier'
import { escrowIdOf, moneyOf, type CoordinatorContext } from './types.ts'

// The job protocol as the coordinator reads it, shared by the run that holds the job stream
// (lease.ts) and the fetch of a result kept by the provider (resume.ts).

/**
 * The lease for a run. A re-run's lease names the job's public id, like the job's own run:
 * the provider cannot tell which one it holds, nor whether there is another.
 */
export function leaseOf(ctx: CoordinatorContext, job: Job): Lease {
  const secrets = ctx.sealed.get(job.id)
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
    ...(secrets !== undefined ? { secrets } : {}),
  }
}

/**
 * How a stream ended, short of a failure: the checked receipt; or, on the result protocol,
 * the provider saying the run is still going, or that it has no result for it (it never had
 * the lease, or lost the run). Expected ends are values; only what breaks the run is thrown.
 */
export type StreamEnd =
  | { kind: 'result'; receipt: ResultReceipt }
  | { kind: 'running' }
  | { kind: 'lost'; error: KilnError<'PEER_UNREACHABLE'> }

/**
 * Reads provider frames up to the receipt: stores logs, receives and checks the output.
 * `runId` is the row the run is kept in (a re-run's own id; the lease names the job's).
 */
export async function follow(ctx: CoordinatorContext, ch: Channel, lease: Lease, runId: string): Promise<StreamEnd> {
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
        return { kind: 'running' }
      case 'lost':
        return {
          kind: 'lost',
          error: new KilnError('PEER_UNREACHABLE', `the provider has no result: ${frame.error.message}`, {
            providerError: frame.error,
            lost: true,
          }),
        }
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
        return { kind: 'result', receipt }
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
