import { z } from 'zod'

/**
 * Strings from the network carry no C0 control characters nor DEL: a NUL cannot be stored
 * (Postgres refuses it in text and jsonb) and the others only hide from a person reading a
 * name or a log line what it really says. Tab, newline and carriage return pass only where
 * text needs them (a command's script, an environment value, an error message).
 */
function firstControl(s: string, allowWhitespace: boolean): number {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c === 0x7f || (c < 0x20 && !(allowWhitespace && (c === 0x09 || c === 0x0a || c === 0x0d)))) return i
  }
  return -1
}

function withoutControls(allowWhitespace: boolean): z.ZodString {
  const allowed = allowWhitespace ? 'printable text, tabs and line breaks' : 'printable text on one line'
  return z.string().check((ctx) => {
    const at = firstControl(ctx.value, allowWhitespace)
    if (at < 0) return
    const hex = ctx.value.charCodeAt(at).toString(16).toUpperCase().padStart(4, '0')
    ctx.issues.push({
      code: 'custom',
      input: ctx.value,
      message: `contains the control character U+${hex} at position ${at}; only ${allowed} is accepted`,
    })
  })
}

/** A string of one line: no control characters at all. */
export const plainText = (): z.ZodString => withoutControls(false)
/** A string that may hold tabs and line breaks, but no other control character. */
export const multilineText = (): z.ZodString => withoutControls(true)
