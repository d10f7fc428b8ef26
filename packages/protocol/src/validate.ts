import type { z } from 'zod'
import { KilnError, type FieldIssue } from './errors.ts'

/** Turns zod issues into field issues a person can act on. */
export function toFieldIssues(error: z.ZodError): FieldIssue[] {
  return error.issues.map((issue) => {
    const path = issue.path.map(String).join('.')
    const expected = describeExpected(issue)
    return expected ? { path, message: issue.message, expected } : { path, message: issue.message }
  })
}

function describeExpected(issue: z.core.$ZodIssue): string | undefined {
  switch (issue.code) {
    case 'invalid_type':
      return issue.expected
    case 'invalid_value':
      return `one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`
    case 'too_small':
      return `${issue.origin === 'string' ? 'length ' : ''}${issue.inclusive ? '>=' : '>'} ${String(issue.minimum)}`
    case 'too_big':
      return `${issue.origin === 'string' ? 'length ' : ''}${issue.inclusive ? '<=' : '<'} ${String(issue.maximum)}`
    case 'unrecognized_keys':
      return 'no other keys'
    default:
      return undefined
  }
}

/** Parses `value` with `schema` or throws PAYLOAD_INVALID naming every bad field. */
export function parseOrThrow<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const result = schema.safeParse(value)
  if (result.success) return result.data
  const issues = toFieldIssues(result.error)
  const first = issues[0]
  const summary = first ? `${first.path || '(root)'}: ${first.message}` : 'invalid'
  throw new KilnError(
    'PAYLOAD_INVALID',
    `invalid ${what}: ${summary}${issues.length > 1 ? ` (+${issues.length - 1} more)` : ''}`,
    { issues },
  )
}
