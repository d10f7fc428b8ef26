import { describe, expect, it } from 'vitest'
import { sha256Hex } from '@kiln/protocol'
import { LogCollector } from '../src/runtime/index.ts'

describe('LogCollector', () => {
  it('passes every piece on, hashes all bytes in arrival order', () => {
    const seen: string[] = []
    const log = new LogCollector(1024, (stream, text) => seen.push(`${stream}:${text}`))
    log.push('stdout', Buffer.from('one\n'))
    log.push('stderr', Buffer.from('two\n'))
    const r = log.finish()
    expect(seen).toEqual(['stdout:one\n', 'stderr:two\n'])
    expect(r).toEqual({ text: 'one\ntwo\n', truncated: false, digest: sha256Hex('one\ntwo\n'), bytes: 8 })
  })

  it('keeps head and tail within maxBytes and marks the cut', () => {
    const log = new LogCollector(10)
    const all = 'HEAD-' + 'x'.repeat(1000) + '-TAIL'
    for (let i = 0; i < all.length; i += 7) log.push('stdout', Buffer.from(all.slice(i, i + 7)))
    const r = log.finish()
    expect(r.truncated).toBe(true)
    expect(r.bytes).toBe(all.length)
    expect(r.digest).toBe(sha256Hex(all))
    expect(r.text.startsWith('HEAD-')).toBe(true)
    expect(r.text.endsWith('-TAIL')).toBe(true)
    expect(r.text).toContain(`[kiln: ${all.length - 10} bytes of log omitted`)
  })

  it('does not split a UTF-8 character across pieces, and survives a throwing listener', () => {
    const seen: string[] = []
    const errors: unknown[] = []
    const log = new LogCollector(
      1024,
      (_s, text) => {
        seen.push(text)
        throw new Error('listener bug')
      },
      (e) => errors.push(e),
    )
    const bytes = Buffer.from('héllo')
    log.push('stdout', bytes.subarray(0, 2))
    log.push('stdout', bytes.subarray(2))
    const r = log.finish()
    expect(seen.join('')).toBe('héllo')
    expect(r.text).toBe('héllo')
    expect(errors.length).toBeGreaterThan(0)
  })

  it('masks secret values in what onLog gets, the kept log and the digest, even split across chunks', () => {
    const seen: string[] = []
    const log = new LogCollector(1024, (stream, text) => seen.push(`${stream}:${text}`), undefined, ['hunter22'])
    for (const piece of ['key=hun', 'ter', '22\n', 'again hunter22']) log.push('stdout', Buffer.from(piece))
    log.push('stderr', Buffer.from('err hunter22\n'))
    const r = log.finish()
    const streamed = seen.map((s) => s.replace(/^std(out|err):/, '')).join('')
    expect(streamed).not.toContain('hunter22')
    expect(seen.filter((s) => s.startsWith('stderr:')).join('')).toBe('stderr:err ***\n')
    expect(
      seen
        .filter((s) => s.startsWith('stdout:'))
        .map((s) => s.slice(7))
        .join(''),
    ).toBe('key=***\nagain ***')
    expect(r.text).not.toContain('hunter22')
    expect(r.text.length).toBe(streamed.length)
    // The digest covers what the client is sent, in the order it was sent.
    expect(r.digest).toBe(sha256Hex(streamed))
    expect(r.bytes).toBe(Buffer.byteLength(streamed))
  })

  it('with a mask of only too-short values, streams the output unchanged', () => {
    const log = new LogCollector(1024, undefined, undefined, ['ab'])
    log.push('stdout', Buffer.from('ab ab\n'))
    expect(log.finish()).toMatchObject({ text: 'ab ab\n', digest: sha256Hex('ab ab\n') })
  })
})
