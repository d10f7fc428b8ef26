/**
 * mulberry32: a small seeded PRNG, the same sequence everywhere for a seed, so tests and
 * benchmarks that draw random cases are reproducible. Returns floats in [0, 1).
 */
export function mulberry32(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = Math.imul(s ^ (s >>> 15), s | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
