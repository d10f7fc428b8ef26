import { gpuMismatch } from '@kiln/protocol'
import { BLOCK, insert, newBucket, remove, update, type Bucket, type Summary } from './bucket.ts'
import { fitsMember, scoreOf, type JobCtx, type ProviderRecord } from './record.ts'

/**
 * The index. Providers with the same region, the same GPUs, the same answer to network jobs
 * and about the same size share a bucket (bucket.ts), so region, network and GPU
 * model/VRAM/count are checked once per bucket, not per provider. A search visits buckets
 * from the most promising down and skips every band, block and member that cannot hold the
 * job or cannot beat the best score found so far. The bounds are exact lower bounds, so the
 * choice is the one a scan of every provider would make.
 */

/** Scores are sums of a few terms around 1..20; this absorbs rounding, never a real difference. */
const EPS = 1e-9

export interface Best {
  rec: ProviderRecord
  s: number
}

export interface BucketIndex {
  add(r: ProviderRecord): void
  remove(r: ProviderRecord): void
  /** The record's free capacity, load or quality changed; its price and bucket did not. */
  changed(r: ProviderRecord): void
  search(j: JobCtx): Best | undefined
  /** The lowest price of a provider that fits the job, if one is below `below`; else `below`. */
  cheapest(j: JobCtx, below: number): number
  /** Providers looked at one by one since the index was made. */
  examined(): number
}

/**
 * Can some open member of this summary hold the job at all? A member's bond is at least the
 * bond at the summary's lowest price, so no member can post it when the richest cannot post that.
 */
function mayFit(s: Summary, j: JobCtx): boolean {
  return (
    s.open > 0 &&
    s.maxCpu >= j.cpu &&
    s.maxMem >= j.mem &&
    s.maxGpus >= j.gpus &&
    s.maxRep >= j.minRep &&
    s.minPrice <= j.maxPrice &&
    (j.bondAt === undefined || s.maxBond === Infinity || j.bondAt(s.minPrice) <= s.maxBond)
  )
}

/**
 * The most of the score a member of `s` can lose to the job's own demand: score = a*price +
 * b - demand, and the job's share of a machine is largest on the smallest machine.
 */
function demandOf(s: Summary, j: JobCtx, gpuDen: number, wFit: number): number {
  return wFit * (j.cpu / s.minCores + j.mem / s.minMem + (2 * j.gpus) / gpuDen)
}

/** No member of `s` scores below this; spare capacity is never negative where the job fits, so score >= a*price + ql too. */
function lowerBound(s: Summary, j: JobCtx, gpuDen: number, wFit: number): number {
  const base = j.a * s.minPrice
  const byFit = base + s.minB - demandOf(s, j, gpuDen, wFit)
  const byQuality = base + s.minQL
  return byFit > byQuality ? byFit : byQuality
}

export function createBucketIndex(wFit: number): BucketIndex {
  const buckets = new Map<string, Bucket>()
  // Which buckets a kind of job may use depends only on region, network and GPU request: cache it.
  const candidates = new Map<string, Bucket[]>()
  let examined = 0
  // Scratch space for ordering buckets per search, reused to keep searches allocation-free.
  let order: Bucket[] = []
  let bounds = new Float64Array(64)

  const candidatesFor = (j: JobCtx): Bucket[] => {
    const where = `${j.region ?? ''}\u0000${j.network ? 'n' : ''}`
    const key = j.gpus === 0 ? where : `${where}\u0000${j.gpus}|${j.gpu.minVramMb}|${j.gpu.models.join('\u0001')}`
    let list = candidates.get(key)
    if (!list) {
      list = [...buckets.values()].filter(
        (b) =>
          (j.region === undefined || b.region === j.region) &&
          (!j.network || b.network) &&
          gpuMismatch(j.gpu, b.gpus, b.gpuModels) === undefined,
      )
      candidates.set(key, list)
    }
    return list
  }

  const scan = (bucket: Bucket, j: JobCtx, best: Best | undefined): Best | undefined => {
    const { bands, gpuDen } = bucket
    let limit = best ? best.s + EPS : Infinity
    for (const band of bands) {
      // Bands are ordered by their price floor: once price alone loses, so do all later bands.
      if (band.lo > j.maxPrice || j.a * band.lo + bucket.all.minQL > limit) break
      const s = band.sum
      if (!mayFit(s, j) || lowerBound(s, j, gpuDen, wFit) > limit) continue
      const { members, blocks } = band
      const bandBase = j.a * s.minPrice - demandOf(s, j, gpuDen, wFit)
      for (let k = 0; k < blocks.length; k++) {
        // Members are ordered by b: once b alone loses, so do all later blocks of this band.
        if (bandBase + members[k * BLOCK]!.b > limit) break
        const blk = blocks[k]!
        if (!mayFit(blk, j) || lowerBound(blk, j, gpuDen, wFit) > limit) continue
        const base = j.a * blk.minPrice - demandOf(blk, j, gpuDen, wFit)
        const end = Math.min(members.length, (k + 1) * BLOCK)
        for (let i = k * BLOCK; i < end; i++) {
          const r = members[i]!
          if (base + r.b > limit) break
          if (!r.open) continue
          examined++
          if (!fitsMember(r, j)) continue
          const sc = scoreOf(r, j, wFit)
          if (!best) best = { rec: r, s: sc }
          else if (sc < best.s || (sc === best.s && r.address < best.rec.address)) {
            best.rec = r
            best.s = sc
          } else continue
          limit = best.s + EPS
        }
      }
    }
    return best
  }

  return {
    add(r) {
      // Size classes (powers of two of cores and memory) keep a bucket's machines alike, which
      // keeps its bounds tight: the job's share of each member's machine is about the same.
      const key = `${r.region}\u0000${r.network ? 'n' : ''}\u0000${r.gpuSig}\u0000${31 - Math.clz32(r.cores)}\u0000${31 - Math.clz32(r.memTotal >> 10)}`
      let b = buckets.get(key)
      if (!b) {
        buckets.set(key, (b = newBucket(r)))
        candidates.clear()
      }
      insert(b, r)
    },
    remove(r) {
      if (r.bucket) remove(r.bucket as Bucket, r)
    },
    changed(r) {
      if (r.bucket) update(r.bucket as Bucket, r)
    },
    search(j) {
      const list = candidatesFor(j)
      if (order.length < list.length) {
        order = new Array<Bucket>(list.length)
        bounds = new Float64Array(list.length)
      }
      let n = 0
      for (const b of list) {
        if (!mayFit(b.all, j)) continue
        bounds[n] = lowerBound(b.all, j, b.gpuDen, wFit)
        order[n++] = b
      }
      // Most promising bucket first, so that a good best prunes the rest. Selection rather than
      // a sort: usually only a few buckets have a bound below the best score, so few rounds run.
      let best: Best | undefined
      for (;;) {
        let at = -1
        let min = best ? best.s + EPS : Infinity
        for (let i = 0; i < n; i++)
          if (bounds[i]! <= min) {
            min = bounds[i]!
            at = i
          }
        if (at < 0) break
        bounds[at] = NaN // visited: NaN compares false, so it is never picked again
        best = scan(order[at]!, j, best)
      }
      return best
    },
    cheapest(j, below) {
      // Bands are ordered by their price floor and every summary knows its open members' lowest
      // price, so only what could undercut the best price so far is looked at member by member.
      let best = below
      for (const bucket of candidatesFor(j)) {
        if (!mayFit(bucket.all, j) || bucket.all.minPrice >= best) continue
        for (const band of bucket.bands) {
          if (band.lo >= best) break
          if (!mayFit(band.sum, j) || band.sum.minPrice >= best) continue
          const { members, blocks } = band
          for (let k = 0; k < blocks.length; k++) {
            const blk = blocks[k]!
            if (!mayFit(blk, j) || blk.minPrice >= best) continue
            const end = Math.min(members.length, (k + 1) * BLOCK)
            for (let i = k * BLOCK; i < end; i++) {
              const r = members[i]!
              if (!r.open || r.price >= best) continue
              examined++
              if (fitsMember(r, j)) best = r.price
            }
          }
        }
      }
      return best
    },
    examined: () => examined,
  }
}
