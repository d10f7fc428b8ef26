import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Lease, ResultReceipt } from '@kiln/protocol'

/** What the provider remembers of each lease, on disk, so a restart can still settle it. */
export interface JobRecord {
  lease: Lease
  state: 'accepted' | 'running' | 'finished'
  receipt?: ResultReceipt
  acceptedAt: number
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

  has(jobId: string): boolean {
    return this.#cache.has(jobId) || existsSync(join(this.#dir, `${jobId}.json`))
  }

  all(): JobRecord[] {
    return [...this.#cache.values()]
  }
}
