import {
  ComparatorConfig,
  ExactComparator,
  ImageComparator,
  NumericComparator,
  type ComparatorConfigInput,
} from '@kiln/protocol'

export { ComparatorConfig, ExactComparator, ImageComparator, NumericComparator, type ComparatorConfigInput }

/** Used when an image comparator names no threshold: visually indistinguishable. */
export const DEFAULT_MIN_PSNR = 40

/** Compiles a glob to an anchored RegExp over '/'-separated paths. */
export function globToRegExp(glob: string): RegExp {
  let re = ''
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string
    if (c === '*') {
      if (glob[i + 1] === '*') {
        i++
        // `**/` may also match nothing, so `**/*.npy` selects top-level files too.
        if (glob[i + 1] === '/') {
          i++
          re += '(?:.*/)?'
        } else {
          re += '.*'
        }
      } else {
        re += '[^/]*'
      }
    } else if (c === '?') {
      re += '[^/]'
    } else {
      re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&')
    }
  }
  return new RegExp(`^${re}$`)
}

export function matchesAny(path: string, globs: readonly string[] | undefined): boolean {
  if (globs === undefined) return true
  return globs.some((g) => globToRegExp(g).test(path))
}
