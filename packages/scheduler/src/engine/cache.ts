import type { CapacityAdvert, JobSpec } from '@kiln/protocol'
import type { PlacementCached } from './types.ts'

/**
 * What a provider holds already, as the matching engine weighs it. Neither the spec nor the
 * advert says how large an image is, so a cached image counts as this many bytes of inputs:
 * about a compressed framework image (CUDA, PyTorch) and its layers. Model weights of several
 * GiB outweigh it; a small data file does not.
 */
export const IMAGE_CACHE_BYTES = 1024 ** 3

/** The part of a job that a provider's cache can hold, computed once per placement. */
export interface CacheNeed {
  image: string
  /** Inputs with a digest (by placement time, all of them). */
  inputs: { name: string; sha256: string; size: number }[]
  /** The job's cacheTolerance: how much dearer than the cheapest fitting offer a holder may be. 0: off. */
  tolerance: number
}

/** What a record keeps of its advert's cache: sets, so that a check per input is one lookup. */
export interface CacheHeld {
  images: ReadonlySet<string>
  inputs: ReadonlySet<string>
}

const NOTHING: ReadonlySet<string> = new Set()

export function heldOf(advert: CapacityAdvert): CacheHeld {
  const c = advert.cache
  return {
    images: c?.images.length ? new Set(c.images) : NOTHING,
    inputs: c?.inputs.length ? new Set(c.inputs) : NOTHING,
  }
}

export function cacheNeed(spec: JobSpec): CacheNeed {
  const inputs: CacheNeed['inputs'] = []
  for (const i of spec.inputs)
    if (i.sha256 !== undefined) inputs.push({ name: i.name, sha256: i.sha256, size: i.size ?? 0 })
  return { image: spec.image, inputs, tolerance: spec.placement.cacheTolerance }
}

/**
 * How much of the job the provider holds, in bytes (its image as IMAGE_CACHE_BYTES), or -1
 * when it holds nothing of it: a holder of one small input still counts as a holder.
 */
export function heldWeight(held: CacheHeld, need: CacheNeed): number {
  let w = held.images.has(need.image) ? IMAGE_CACHE_BYTES : -1
  for (const i of need.inputs) if (held.inputs.has(i.sha256)) w = Math.max(w, 0) + i.size
  return w
}

/** What the chosen provider holds of the job, for the placement's reason. */
export function cachedOf(held: CacheHeld, need: CacheNeed): PlacementCached {
  const inputs: string[] = []
  let bytes = 0
  for (const i of need.inputs)
    if (held.inputs.has(i.sha256)) {
      inputs.push(i.name)
      bytes += i.size
    }
  return { image: held.images.has(need.image), inputs, bytes }
}

/**
 * Who holds what: image references and input digests to the providers whose adverts list
 * them. A placement looks up only the job's own image and inputs, so the cache rule costs
 * nothing for the many providers that hold none of them.
 */
export interface CacheIndex<R extends { held: CacheHeld }> {
  /** The record's held sets are about to be replaced: forget them. */
  drop(r: R): void
  /** Index the record's (new) held sets. */
  add(r: R): void
  /** Calls `visit` once for every provider that holds the job's image or one of its inputs. */
  holders(need: CacheNeed, visit: (r: R) => void): void
}

export function createCacheIndex<R extends { held: CacheHeld }>(): CacheIndex<R> {
  const images = new Map<string, Set<R>>()
  const inputs = new Map<string, Set<R>>()
  const edit = (map: Map<string, Set<R>>, keys: ReadonlySet<string>, r: R, add: boolean) => {
    for (const k of keys) {
      let s = map.get(k)
      if (add) {
        if (!s) map.set(k, (s = new Set()))
        s.add(r)
      } else if (s) {
        s.delete(r)
        if (s.size === 0) map.delete(k)
      }
    }
  }
  // Several inputs (and the image) may name the same provider: a set per lookup visits it once.
  const seen = new Set<R>()
  const once = (s: Set<R> | undefined, visit: (r: R) => void) => {
    if (s)
      for (const r of s)
        if (!seen.has(r)) {
          seen.add(r)
          visit(r)
        }
  }
  return {
    drop(r) {
      edit(images, r.held.images, r, false)
      edit(inputs, r.held.inputs, r, false)
    },
    add(r) {
      edit(images, r.held.images, r, true)
      edit(inputs, r.held.inputs, r, true)
    },
    holders(need, visit) {
      if (images.size === 0 && inputs.size === 0) return
      once(images.get(need.image), visit)
      for (const i of need.inputs) once(inputs.get(i.sha256), visit)
      seen.clear()
    },
  }
}
