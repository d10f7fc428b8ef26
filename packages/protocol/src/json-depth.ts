/**
 * How deeply a message may nest. Kiln's deepest message (an envelope around a lease around a
 * job spec) nests under 10 levels; 32 leaves room, and keeps the recursive code a message
 * meets (canonical JSON, zod, Postgres jsonb) far from the end of the stack.
 */
export const MAX_JSON_DEPTH = 32

/** How deeply a JSON text nests, counted without parsing it; counting stops once past `limit`. */
export function jsonTextDepth(text: string, limit: number): number {
  let depth = 0
  let max = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 0x5c) i++
      else if (c === 0x22) inString = false
    } else if (c === 0x22) {
      inString = true
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > max && (max = depth) > limit) return max
    } else if (c === 0x7d || c === 0x5d) {
      depth--
    }
  }
  return max
}

/** How deeply a parsed value nests, walked without recursion; walking stops once past `limit`. */
export function valueDepth(value: unknown, limit: number): number {
  const todo: [unknown, number][] = [[value, 0]]
  let max = 0
  for (let next = todo.pop(); next; next = todo.pop()) {
    const [v, above] = next
    if (v === null || typeof v !== 'object') continue
    const depth = above + 1
    if (depth > max && (max = depth) > limit) return max
    for (const child of Array.isArray(v) ? v : Object.values(v)) todo.push([child, depth])
  }
  return max
}
