export interface LogEntry {
  seq: number
  jobId: string
  stream: 'stdout' | 'stderr'
  text: string
  at: number
}

export interface LogPage {
  jobId: string | null
  entries: LogEntry[]
  /** The last seq handed out; ask with `after=next` for what comes later. */
  next: number
  /** True when entries after `after` were already dropped to stay within the limits. */
  gap: boolean
}

/**
 * The running job's recent log lines, in memory, for the dashboard. Bounded by entries and by
 * bytes, oldest first out: the full log is the client's (hashed into the receipt), this is a view.
 * Seq numbers never restart, so a page asked with an old `after` simply gets the newer job.
 */
export class LogRing {
  #entries: LogEntry[] = []
  #bytes = 0
  #seq = 0
  #jobId: string | null = null
  /** The last seq before this job's first line. */
  #begunAt = 0

  constructor(
    private readonly maxEntries = 2000,
    private readonly maxBytes = 512 * 1024,
  ) {}

  /** A new job: its lines replace the previous job's. */
  begin(jobId: string): void {
    this.#jobId = jobId
    this.#begunAt = this.#seq
    this.#entries = []
    this.#bytes = 0
  }

  push(stream: 'stdout' | 'stderr', text: string, at = Date.now()): void {
    if (this.#jobId === null || text === '') return
    const kept = text.length > this.maxBytes ? text.slice(-this.maxBytes) : text
    this.#entries.push({ seq: ++this.#seq, jobId: this.#jobId, stream, text: kept, at })
    this.#bytes += kept.length
    while (this.#entries.length > this.maxEntries || this.#bytes > this.maxBytes) {
      const gone = this.#entries.shift()
      if (!gone) break
      this.#bytes -= gone.text.length
    }
  }

  since(after: number, limit = 500): LogPage {
    // A seq from before a daemon restart is larger than any we have: start over.
    const from = after > this.#seq ? 0 : Math.max(0, after)
    const entries = this.#entries.filter((e) => e.seq > from).slice(0, limit)
    const oldest = this.#entries[0]?.seq
    const gap = oldest !== undefined && from >= this.#begunAt && oldest > from + 1
    const last = entries[entries.length - 1]
    return { jobId: this.#jobId, entries, next: last ? last.seq : this.#seq, gap }
  }
}
