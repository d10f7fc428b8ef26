import { describe, expect, it } from 'vitest'
import { LogRing } from '../src/log-ring.ts'

describe('LogRing', () => {
  it("pages a job's lines by seq, and a new job replaces the old one's", () => {
    const ring = new LogRing()
    expect(ring.since(0)).toEqual({ jobId: null, entries: [], next: 0, gap: false })
    ring.push('stdout', 'ignored: no job yet')
    ring.begin('job_a')
    ring.push('stdout', 'one\n')
    ring.push('stderr', 'two\n')
    const first = ring.since(0)
    expect(first.entries.map((e) => [e.seq, e.stream, e.text])).toEqual([
      [1, 'stdout', 'one\n'],
      [2, 'stderr', 'two\n'],
    ])
    ring.push('stdout', 'three\n')
    expect(ring.since(first.next).entries.map((e) => e.text)).toEqual(['three\n'])
    ring.begin('job_b')
    ring.push('stdout', 'b1\n')
    expect(ring.since(3)).toMatchObject({
      jobId: 'job_b',
      entries: [{ seq: 4, text: 'b1\n', jobId: 'job_b' }],
      next: 4,
      gap: false,
    })
  })

  it('keeps within its limits, oldest out, and says when a reader missed lines', () => {
    const ring = new LogRing(3, 1000)
    ring.begin('job_a')
    for (let i = 1; i <= 5; i++) ring.push('stdout', `${i}\n`)
    expect(ring.since(1)).toMatchObject({ gap: true, next: 5 })
    expect(ring.since(1).entries.map((e) => e.seq)).toEqual([3, 4, 5])
    const small = new LogRing(100, 10)
    small.begin('job_b')
    small.push('stdout', '0123456789abcdef')
    expect(small.since(0).entries[0]?.text).toBe('6789abcdef')
  })

  it('starts over for a reader whose seq comes from before a restart', () => {
    const ring = new LogRing()
    ring.begin('job_a')
    ring.push('stdout', 'x')
    expect(ring.since(9999).entries.map((e) => e.text)).toEqual(['x'])
  })
})
