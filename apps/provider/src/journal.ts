import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Lease, ResultReceipt } from '@kiln/protocol'

/**
 * What the provider remembers of each lease, on disk, so a restart can still settle it:
 * accepted → running → finished (a receipt) or failed (no receipt: the run was lost).
 */
export interface JobRecord {
  lease: Lease
  state: 'accepted' | 'running' | 'finished' | 'failed'
  acceptedAt: number
  startedAt?: number | null
  receipt?: ResultReceipt
  /**
   * The receipt went out on the job stream. A receipt the coordinator never saw earns nothing
   * yet: it is kept (with the output) so it can be delivered and paid later.
   */
  delivered?: boolean
  /** Where the packed output of an undelivered result is kept (content-addressed). */
  outputPath?: string
  /** Why the run failed without a receipt. */
  error?: string
  /** Set when this record was settled by crash recovery at a restart. */
  recoveredAt?: number
  /** What we co-signed when the vault was settled. */
  settlement?: {
    action: 'release' | 'refund' | 'slash'
    toProvider: number
    bondReturned?: number
    at: number
    signature?: string
  }
}

export class JobJournal {
  readonly #dir: string
  readonly #cache = new Map<string, JobRecord>()

  constructor(dataDir: string) {
    this.#dir = join(dataDir, 'jobs')
    mkdirSync(this.#dir, { recursive: true })
    for (const f of readdirSync(this.#dir).filter((n) => n.endsWith('.json'))) {
      const rec = JSON.parse(readFileSync(join(this.#dir, f), 'utf8')) as JobRecord
      this.#cache.set(rec.lease.jobId, rec)
    }
  }

  get(jobId: string): JobRecord | undefined {
    return this.#cache.get(jobId)
  }

  put(rec: JobRecord): void {
    this.#cache.set(rec.lease.jobId, rec)
    const file = join(this.#dir, `${rec.lease.jobId}.json`)
    writeFileSync(`${file}.tmp`, JSON.stringify(rec))
    renameSync(`${file}.tmp`, file)
  }

  /** Merges `patch` into the record of `jobId` (which must exist) and writes it. */
  update(jobId: string, patch: Partial<Omit<JobRecord, 'lease'>>): JobRecord | undefined {
    const rec = this.#cache.get(jobId)
    if (!rec) return undefined
    const next = { ...rec, ...patch }
    this.put(next)
    return next
  }

  has(jobId: string): boolean {
    return this.#cache.has(jobId) || existsSync(join(this.#dir, `${jobId}.json`))
  }

  /** Newest first. */
  all(): JobRecord[] {
    return [...this.#cache.values()].sort((a, b) => b.acceptedAt - a.acceptedAt)
  }
}
