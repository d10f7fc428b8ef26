import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { maskSecrets, SecretMasker } from '../src/index.ts'

/** Pushes the chunks one by one and flushes, returning everything given out. */
function stream(values: readonly string[], chunks: readonly string[]): string {
  const m = new SecretMasker(values)
  return chunks.map((c) => m.push(c)).join('') + m.flush()
}

/** A plain reference: mark every character of every occurrence, print each marked run as one mask. */
function reference(text: string, values: readonly string[]): string {
  const all = values.flatMap((v) => [v, ...v.split(/\r?\n/)]).filter((v) => v.length >= 4)
  const marked = new Array<boolean>(text.length).fill(false)
  for (const v of all) {
    for (let i = text.indexOf(v); i >= 0; i = text.indexOf(v, i + 1)) marked.fill(true, i, i + v.length)
  }
  return [...text].map((ch, i) => (marked[i] ? (marked[i - 1] ? '' : '***') : ch)).join('')
}

describe('SecretMasker', () => {
  it('masks every occurrence of every value in one chunk', () => {
    expect(maskSecrets('key=hunter22 and again hunter22; tok abcd', ['hunter22', 'abcd'])).toBe(
      'key=*** and again ***; tok ***',
    )
  })

  it('masks a value split across chunks, one character at a time', () => {
    const text = 'token: s3cr3t-value.\n'
    expect(stream(['s3cr3t-value'], [...text])).toBe('token: ***.\n')
    expect(stream(['s3cr3t-value'], ['token: s3c', 'r3t-va', 'lue.\n'])).toBe('token: ***.\n')
  })

  it('holds back only what could still start a value, at most maxLen - 1 characters', () => {
    const m = new SecretMasker(['abcdef'])
    expect(m.push('hello abc')).toBe('hello ')
    expect(m.push('dx')).toBe('abcdx')
    expect(m.push('zzzzzabcde')).toBe('zzzzz')
    expect(m.push('f!')).toBe('***!')
    expect(m.push('no prefix here')).toBe('no prefix here')
    expect(m.push('abcde')).toBe('')
    expect(m.flush()).toBe('abcde')
  })

  it('does not mask values shorter than four characters', () => {
    expect(maskSecrets('on 1 dev abcd', ['on', '1', 'dev', 'abcd'])).toBe('on 1 dev ***')
    const m = new SecretMasker(['abc'])
    expect(m.push('ab')).toBe('ab')
    expect(m.flush()).toBe('')
  })

  it('masks overlapping and adjacent occurrences as one run, showing none of their characters', () => {
    expect(maskSecrets('xabcdefy', ['abcd', 'cdef'])).toBe('x***y')
    expect(maskSecrets('abcdabcd', ['abcd'])).toBe('***')
    expect(stream(['abcd', 'cdef'], ['xab', 'cd', 'efy'])).toBe('x***y')
    // A whole value seen while the end of it could still start another one.
    expect(stream(['abcdef', 'defgh'], ['abcdef', 'x'])).toBe('***x')
  })

  it('prefers the longer value where a shorter one is its prefix, even across chunks', () => {
    expect(stream(['abcd', 'abcdefgh'], ['abcd', 'efgh!'])).toBe('***!')
    expect(stream(['abcd', 'abcdefgh'], ['abcd', 'ef!'])).toBe('***ef!')
  })

  it('masks a multi-line value also line by line', () => {
    const pem =
      '-----BEGIN KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n-----END KEY-----'
    const out = maskSecrets(`line MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n${pem}\n`, [pem])
    expect(out).toBe('line ***\n***\n')
  })

  it('passes text through unchanged without values, and starts over after flush', () => {
    expect(stream([], ['a', 'b'])).toBe('ab')
    const m = new SecretMasker(['wxyz'])
    expect(m.push('wx')).toBe('')
    expect(m.flush()).toBe('wx')
    expect(m.push('yz')).toBe('yz')
  })

  const alphabet = fc.constantFrom('a', 'b', 'c', '\n', 'x')
  const word = (min: number, max: number) =>
    fc.array(alphabet, { minLength: min, maxLength: max }).map((a) => a.join(''))
  const split = (text: string, cuts: number[]): string[] => {
    const at = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b)
    const parts: string[] = []
    let last = 0
    for (const c of at) {
      parts.push(text.slice(last, c))
      last = c
    }
    parts.push(text.slice(last))
    return parts
  }

  it('gives the same output for any chunking as for the whole text (property)', () => {
    fc.assert(
      fc.property(
        fc.array(word(1, 7), { minLength: 1, maxLength: 4 }),
        // Text made of random pieces and of the values themselves, so that values occur, overlap and get cut.
        fc.array(fc.oneof(word(0, 6), fc.nat(3)), { maxLength: 10 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        (values, pieces, cuts) => {
          const text = pieces.map((p) => (typeof p === 'number' ? values[p % values.length]! : p)).join('')
          expect(stream(values, split(text, cuts))).toBe(reference(text, values))
        },
      ),
      { numRuns: 2000 },
    )
  })

  it('never gives out a value of four or more characters, and changes nothing else (property)', () => {
    // The alphabet has no '*', so a value cannot be made out of the mask itself.
    fc.assert(
      fc.property(
        fc.array(word(4, 8), { minLength: 1, maxLength: 3 }),
        fc.array(fc.oneof(word(0, 6), fc.constant('SECRET')), { maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (values, pieces, cuts) => {
          const text = pieces.map((p, i) => (p === 'SECRET' ? values[i % values.length]! : p)).join('')
          const out = stream(values, split(text, cuts))
          for (const v of values) {
            if (v.includes('\n')) continue
            expect(out.includes(v)).toBe(false)
          }
          // Taking the masks out leaves a subsequence of the input (nothing is added but `***`).
          expect(out.replaceAll('***', '').length).toBeLessThanOrEqual(text.length)
          if (!values.some((v) => text.includes(v) || v.split('\n').some((l) => l.length >= 4 && text.includes(l)))) {
            expect(out).toBe(text)
          }
        },
      ),
      { numRuns: 2000 },
    )
  })

  it('holds back at most maxLen - 1 characters after any push (property)', () => {
    // Values end in 'c', which the text never has: prefixes are seen, whole values never, so
    // nothing is masked and what is held back is exactly what was pushed and not given out.
    const text = fc.array(fc.constantFrom('a', 'b', 'x'), { maxLength: 12 }).map((a) => a.join(''))
    fc.assert(
      fc.property(
        fc.array(
          word(3, 8).map((w) => `${w.replaceAll('c', 'a').replaceAll('\n', 'b')}c`),
          { minLength: 1, maxLength: 3 },
        ),
        fc.array(text, { maxLength: 8 }),
        (values, chunks) => {
          const m = new SecretMasker(values)
          const maxLen = Math.max(...values.map((v) => v.length))
          let pushed = ''
          let given = ''
          for (const c of chunks) {
            pushed += c
            given += m.push(c)
            expect(pushed.startsWith(given)).toBe(true)
            expect(pushed.length - given.length).toBeLessThanOrEqual(maxLen - 1)
          }
          expect(given + m.flush()).toBe(pushed)
        },
      ),
      { numRuns: 1000 },
    )
  })
})
