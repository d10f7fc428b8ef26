import type { Address, CapacityAdvert, TokenUnit } from '@kiln/protocol'
import type { OwnerState } from './availability.ts'
import type { GpuProcess, GpuStatus } from './hardware.ts'
import type { JobRecord } from './journal.ts'
import { earnedBy } from './receipts.ts'

/**
 * What the dashboard and `kiln-provider status` show, as plain JSON. The control API speaks
 * these shapes; the CLI and the page read them.
 */
export interface StatusView {
  address: Address
  /** The stablecoin this provider is paid and bonds in, and the unit its amounts are shown in. */
  mint: Address
  token: TokenUnit
  version: string
  region: string
  pricePerHour: number
  state: OwnerState
  available: boolean
  reason: string | null
  pausedAt: number | null
  autoPause: { enabled: boolean; idleSec: number; by: { pid: number; name: string } | null; resumesAt: number | null }
  docker: { ok: boolean; problem: string | null }
  /** Whether jobs that ask for network access are taken (internet only), and why not when they are not. */
  network: { accepted: boolean; problem: string | null }
  /** Crash recovery has run (it waits for the Docker engine). */
  recovered: boolean
  hardware: {
    cpuCores: number
    memoryMb: number
    diskMb: number
    cpuOnly: boolean
    gpus: GpuStatus[]
    gpuProcesses: Array<GpuProcess & { kiln: boolean }>
    gpuProblem: string | null
  }
  job: RunningJobView | null
  advert: { seq: number; available: boolean; reason: string | null; publishedAt: number } | null
  peers: number
  earnings: { jobs: number; paid: number; owed: number }
}

export interface RunningJobView {
  jobId: string
  image: string
  acceptedAt: number
  startedAt: number | null
  pricePerHour: number
  lockAmount: number
  timeoutSec: number
  /** Set once the owner asked to stop it. */
  stopping: string | null
}

export interface JobView {
  jobId: string
  image: string
  state: JobRecord['state']
  acceptedAt: number
  startedAt: number | null
  endedAt: number | null
  status: 'succeeded' | 'failed' | null
  exitCode: number | null
  error: string | null
  containerSeconds: number | null
  pricePerHour: number
  lockAmount: number
  outputDigest: string | null
  /** The receipt reached the coordinator (false: kept in the journal for a later settlement). */
  delivered: boolean | null
  recoveredAt: number | null
  /** What our record says we are owed, and what we co-signed when it was settled. */
  earned: number
  settlement: JobRecord['settlement'] | null
}

export interface EarningsView {
  address: Address
  mint: Address
  /** On-chain stablecoin balance of this provider's address; null when the ledger could not be read. */
  balance: number | null
  balanceProblem: string | null
  /** Co-signed payouts to us, in base units. */
  paid: number
  history: JobView[]
}

export function jobView(rec: JobRecord): JobView {
  const r = rec.receipt
  return {
    jobId: rec.lease.jobId,
    image: rec.lease.spec.image,
    state: rec.state,
    acceptedAt: rec.acceptedAt,
    startedAt: r?.startedAt ?? rec.startedAt ?? null,
    endedAt: r?.endedAt ?? null,
    status: r?.status ?? (rec.state === 'failed' ? 'failed' : null),
    exitCode: r?.exitCode ?? null,
    error: r?.error?.message ?? rec.error ?? null,
    containerSeconds: r?.containerSeconds ?? null,
    pricePerHour: rec.lease.pricePerHour,
    lockAmount: rec.lease.lockAmount,
    outputDigest: r?.outputDigest ?? null,
    delivered: rec.delivered ?? (r ? true : null),
    recoveredAt: rec.recoveredAt ?? null,
    earned: earnedBy(rec),
    settlement: rec.settlement ?? null,
  }
}

export function earningsSummary(records: JobRecord[]): StatusView['earnings'] {
  let paid = 0
  let owed = 0
  for (const rec of records) {
    if (rec.settlement) paid += rec.settlement.toProvider
    else owed += earnedBy(rec)
  }
  return { jobs: records.length, paid, owed }
}

export function advertView(a: CapacityAdvert | undefined, publishedAt: number): StatusView['advert'] {
  return a ? { seq: a.seq, available: a.available, reason: a.reason ?? null, publishedAt } : null
}

/** The earnings page: what the journal says we were paid, and the wallet's balance if the ledger answers within 5 s. */
export async function earningsView(
  records: JobRecord[],
  balanceOf: () => Promise<number>,
  address: Address,
  mint: Address,
): Promise<EarningsView> {
  let balance: number | null = null
  let balanceProblem: string | null = null
  try {
    // A ledger that does not answer must not hang the dashboard.
    balance = await Promise.race([
      balanceOf(),
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error('the ledger did not answer within 5 s')), 5000).unref(),
      ),
    ])
  } catch (e) {
    balanceProblem = (e as Error).message
  }
  return {
    address,
    mint,
    balance,
    balanceProblem,
    paid: earningsSummary(records).paid,
    history: records.slice(0, 200).map(jobView),
  }
}
