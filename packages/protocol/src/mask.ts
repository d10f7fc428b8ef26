/**
 * Values shorter than this are not masked. A one- to three-character secret ("1", "on", "dev")
 * matches all over ordinary output: masking it would shred the log, and the pattern of `***`
 * left behind would show the value anyway. Such a value is not a secret worth the name; the
 * spec validation may refuse it, the masker just leaves it alone.
 */
export const MIN_MASKED_LENGTH = 4

const MASK = '***'

/**
 * Replaces every occurrence of any secret value with `***` in a stream of text chunks (a
 * container's stdout, a log tail), including a value split across chunks. Overlapping or
 * adjacent occurrences become one `***`, so no character of any occurrence is shown.
 *
 * To see a value split across chunks it holds back the end of a chunk that could still be the
 * start of a value: at most `maxLen - 1` characters, released by the next push or by flush().
 * The output of any chunking equals the output of the whole text pushed at once.
 *
 * A multi-line value is also masked line by line, because a program often prints one line of
 * a key file at a time.
 */
export class SecretMasker {
  /** Values by their first character, longest first. */
  readonly #byFirst = new Map<string, string[]>()
  readonly #maxLen: number
  #pending = ''
  /** How many characters at the start of #pending a match already seen covers. */
  #carry = 0
  /** Whether the last character given out was part of a masked run (so a run going on adds no second `***`). */
  #tailMasked = false

  constructor(values: readonly string[]) {
    const all = new Set<string>()
    for (const value of values) {
      for (const v of [value, ...(value.includes('\n') ? value.split(/\r?\n/) : [])]) {
        if (v.length >= MIN_MASKED_LENGTH) all.add(v)
      }
    }
    let maxLen = 0
    for (const v of [...all].sort((a, b) => b.length - a.length)) {
      const list = this.#byFirst.get(v[0]!) ?? []
      list.push(v)
      this.#byFirst.set(v[0]!, list)
      maxLen = Math.max(maxLen, v.length)
    }
    this.#maxLen = maxLen
  }

  /** Takes the next chunk; returns the masked text that is certain now (maybe less than was pushed). */
  push(text: string): string {
    if (this.#maxLen === 0) return text
    this.#pending += text
    return this.#emit(false)
  }

  /** Ends the stream: returns whatever was held back, masked. The masker can then start a new stream. */
  flush(): string {
    if (this.#maxLen === 0) return ''
    const out = this.#emit(true)
    this.#pending = ''
    this.#carry = 0
    this.#tailMasked = false
    return out
  }

  /** Whether the text from `i` to the end is a proper prefix of some value (more text could complete it). */
  #couldStart(buf: string, i: number): boolean {
    const rest = buf.length - i
    for (const v of this.#byFirst.get(buf[i]!) ?? []) {
      if (v.length > rest && v.startsWith(buf.slice(i))) return true
    }
    return false
  }

  #emit(final: boolean): string {
    const buf = this.#pending
    const n = buf.length
    // Everything before `limit` is decided: no value can start there and end in text not seen yet.
    let limit = n
    if (!final) {
      for (let i = Math.max(0, n - this.#maxLen + 1); i < n; i++) {
        if (this.#couldStart(buf, i)) {
          limit = i
          break
        }
      }
    }
    const covered = new Uint8Array(n)
    covered.fill(1, 0, Math.min(this.#carry, n))
    let coverEnd = this.#carry
    for (let i = 0; i < limit; i++) {
      for (const v of this.#byFirst.get(buf[i]!) ?? []) {
        if (buf.startsWith(v, i)) {
          covered.fill(1, i, i + v.length)
          coverEnd = Math.max(coverEnd, i + v.length)
        }
      }
    }
    let out = ''
    let masked = this.#tailMasked
    for (let i = 0; i < limit; i++) {
      if (covered[i] === 1) {
        if (!masked) out += MASK
        masked = true
      } else {
        out += buf[i]
        masked = false
      }
    }
    if (limit > 0) this.#tailMasked = masked
    this.#carry = Math.max(0, coverEnd - limit)
    this.#pending = buf.slice(limit)
    return out
  }
}

/** Masks one whole text (no stream). */
export function maskSecrets(text: string, values: readonly string[]): string {
  const masker = new SecretMasker(values)
  return masker.push(text) + masker.flush()
}
