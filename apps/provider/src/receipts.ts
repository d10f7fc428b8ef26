import { KilnError, leaseCost, type Address, type Lease, type ResultReceipt } from '@kiln/protocol'
import type { RunResult } from './runtime/index.ts'

export type ReceiptInput = Pick<
  RunResult,
  'status' | 'exitCode' | 'error' | 'logDigest' | 'logBytes' | 'startedAt' | 'endedAt' | 'containerSeconds'
> & { output: { digest: string; bytes: number } | null; logPartial?: boolean }

/** The receipt the provider signs for a run: what ran, what it produced, how long it took. */
export function receiptOf(lease: Lease, provider: Address, r: ReceiptInput): ResultReceipt {
  return {
    jobId: lease.jobId,
    provider,
    status: r.status,
    exitCode: r.exitCode,
    ...(r.error
      ? { error: { code: new KilnError(r.error.kind, r.error.message).code, message: r.error.message.slice(0, 1000) } }
      : {}),
    outputDigest: r.output?.digest ?? null,
    outputBytes: r.output?.bytes ?? 0,
    logDigest: r.logDigest,
    logBytes: r.logBytes,
    ...(r.logPartial ? { logPartial: true } : {}),
    startedAt: r.startedAt,
    endedAt: r.endedAt,
    containerSeconds: r.containerSeconds,
    gpuSeconds: r.containerSeconds * lease.spec.resources.gpu.count,
  }
}

/**
 * What our own record says we are owed: a succeeded run whose receipt reached the
 * coordinator, at our lease price for the seconds used. The coordinator may pay more (it pays
 * pro rata for a started run that failed on the job's side); we only insist on this much.
 */
export function earnedBy(rec: { lease: Lease; receipt?: ResultReceipt; delivered?: boolean }): number {
  const r = rec.receipt
  if (!r || r.status !== 'succeeded' || r.startedAt === null || rec.delivered === false) return 0
  return leaseCost(rec.lease.pricePerHour, r.containerSeconds, rec.lease.lockAmount)
}

/**
 * The least a settlement of this lease must pay us: what we earned less the marketplace's
 * fee at the lease's rate (rounded down, as the marketplace computes it), plus our bond back.
 * Only a slash keeps the bond, and we never sign one: the client and arbiter do.
 */
export function owedTo(rec: { lease: Lease; receipt?: ResultReceipt; delivered?: boolean }): {
  earned: number
  owed: number
} {
  const earned = earnedBy(rec)
  const fee = Number((BigInt(earned) * BigInt(rec.lease.feeBps ?? 0)) / 10_000n)
  return { earned, owed: earned - fee + (rec.lease.bond ?? 0) }
}
