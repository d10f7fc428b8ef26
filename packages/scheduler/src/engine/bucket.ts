import type { GpuInfo } from '@kiln/protocol'
import type { ProviderRecord } from './record.ts'

/**
 * One bucket of the index: providers alike in region, network, GPUs and size. Its members are
 * split into price bands (every member of a band costs at least the band's `lo`, and bands are
 * ordered by `lo`); inside a band, members are ordered by `b`, the part of the score that
 * does not depend on the job or the price. So a job that cares about price stops after the
 * cheap bands, and a job that hardly does stops after the first few members of each band.
 * Every BLOCK members, and every band and bucket, keep a summary for bounds and skips.
 */
export const BLOCK = 16
const MAX_BAND = 128

/** Over the open members (available, escrow-ready, with a free slot) of a range. */
export interface Summary {
  open: number
  minPrice: number
  maxCpu: number
  maxMem: number
  maxGpus: number
  maxRep: number
  /** The largest bond an open member can post (Infinity when one does not say). */
  maxBond: number
  minB: number
  minQL: number
  minCores: number
  minMem: number
}

export interface Band {
  lo: number
  members: ProviderRecord[]
  blocks: Summary[]
  sum: Summary
}

export interface Bucket {
  region: string
  network: boolean
  gpus: readonly GpuInfo[]
  gpuModels: string[]
  gpuDen: number
  bands: Band[]
  all: Summary
}

const emptySummary = (): Summary => ({
  open: 0,
  minPrice: Infinity,
  maxCpu: -1,
  maxMem: -1,
  maxGpus: -1,
  maxRep: -Infinity,
  maxBond: -Infinity,
  minB: Infinity,
  minQL: Infinity,
  minCores: Infinity,
  minMem: Infinity,
})

/** Empties a summary in place: summaries are rewritten on every placement, so no garbage. */
function reset(s: Summary): void {
  s.open = 0
  s.minPrice = s.minB = s.minQL = s.minCores = s.minMem = Infinity
  s.maxCpu = s.maxMem = s.maxGpus = -1
  s.maxRep = s.maxBond = -Infinity
}

function summarise(s: Summary, members: readonly ProviderRecord[], from: number, to: number): void {
  reset(s)
  for (let i = from; i < to; i++) {
    const r = members[i]!
    if (!r.open) continue
    s.open++
    if (r.price < s.minPrice) s.minPrice = r.price
    if (r.freeCpu > s.maxCpu) s.maxCpu = r.freeCpu
    if (r.freeMem > s.maxMem) s.maxMem = r.freeMem
    if (r.freeGpus > s.maxGpus) s.maxGpus = r.freeGpus
    if (r.reputation > s.maxRep) s.maxRep = r.reputation
    if (r.maxBond > s.maxBond) s.maxBond = r.maxBond
    if (r.b < s.minB) s.minB = r.b
    if (r.ql < s.minQL) s.minQL = r.ql
    if (r.cores < s.minCores) s.minCores = r.cores
    if (r.memTotal < s.minMem) s.minMem = r.memTotal
  }
}

function absorb(into: Summary, s: Summary): void {
  if (s.open === 0) return
  into.open += s.open
  into.minPrice = Math.min(into.minPrice, s.minPrice)
  into.maxCpu = Math.max(into.maxCpu, s.maxCpu)
  into.maxMem = Math.max(into.maxMem, s.maxMem)
  into.maxGpus = Math.max(into.maxGpus, s.maxGpus)
  into.maxRep = Math.max(into.maxRep, s.maxRep)
  into.maxBond = Math.max(into.maxBond, s.maxBond)
  into.minB = Math.min(into.minB, s.minB)
  into.minQL = Math.min(into.minQL, s.minQL)
  into.minCores = Math.min(into.minCores, s.minCores)
  into.minMem = Math.min(into.minMem, s.minMem)
}

function mergeBands(bucket: Bucket): void {
  reset(bucket.all)
  for (const band of bucket.bands) absorb(bucket.all, band.sum)
}

/** Re-summarises members [from, to) of a band (positions included), then the band and the bucket. */
function resummarise(bucket: Bucket, band: Band, from: number, to: number): void {
  const n = Math.ceil(band.members.length / BLOCK)
  while (band.blocks.length < n) band.blocks.push(emptySummary())
  band.blocks.length = n
  const last = Math.min(n, Math.ceil(to / BLOCK))
  for (let k = Math.floor(from / BLOCK); k < last; k++)
    summarise(band.blocks[k]!, band.members, k * BLOCK, Math.min(band.members.length, (k + 1) * BLOCK))
  for (let i = from; i < Math.min(to, band.members.length); i++) band.members[i]!.pos = i
  reset(band.sum)
  for (const blk of band.blocks) absorb(band.sum, blk)
  mergeBands(bucket)
}

/** Where `b` goes in a band ordered by b (after equal ones). */
function slot(members: readonly ProviderRecord[], b: number): number {
  let lo = 0
  let hi = members.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (members[mid]!.b <= b) lo = mid + 1
    else hi = mid
  }
  return lo
}

function newBand(members: ProviderRecord[]): Band {
  members.sort((x, y) => x.b - y.b)
  const band: Band = { lo: Infinity, members, blocks: [], sum: emptySummary() }
  for (const r of members) {
    band.lo = Math.min(band.lo, r.price)
    r.band = band
  }
  return band
}

export function newBucket(r: ProviderRecord): Bucket {
  return {
    region: r.region,
    network: r.network,
    gpus: r.gpus,
    gpuModels: r.gpuModels,
    gpuDen: r.gpuDen,
    bands: [],
    all: emptySummary(),
  }
}

export function insert(bucket: Bucket, r: ProviderRecord): void {
  const { bands } = bucket
  // The last band whose floor is at or below the price; a new cheapest member lowers band 0's floor.
  let k = 0
  while (k + 1 < bands.length && bands[k + 1]!.lo <= r.price) k++
  let band = bands[k]
  if (!band) bands.push((band = newBand([])))
  band.lo = Math.min(band.lo, r.price)
  const at = slot(band.members, r.b)
  band.members.splice(at, 0, r)
  r.bucket = bucket
  r.band = band
  if (band.members.length <= MAX_BAND) return resummarise(bucket, band, at, band.members.length)
  // Split by price: the cheaper half and the dearer half, each back in b order.
  const byPrice = [...band.members].sort((x, y) => x.price - y.price)
  const half = byPrice.length >> 1
  const parts = [newBand(byPrice.slice(0, half)), newBand(byPrice.slice(half))]
  bands.splice(k, 1, ...parts)
  for (const p of parts) resummarise(bucket, p, 0, p.members.length)
}

export function remove(bucket: Bucket, r: ProviderRecord): void {
  const band = r.band as Band
  band.members.splice(r.pos, 1)
  if (band.members.length === 0) {
    bucket.bands.splice(bucket.bands.indexOf(band), 1)
    mergeBands(bucket)
  } else {
    resummarise(bucket, band, r.pos, band.members.length)
  }
  r.bucket = undefined
  r.band = undefined
  r.pos = -1
}

/** The member's b (or anything its summaries hold) changed: move it to its new place in the band. */
export function update(bucket: Bucket, r: ProviderRecord): void {
  const band = r.band as Band
  const from = r.pos
  band.members.splice(from, 1)
  const to = slot(band.members, r.b)
  band.members.splice(to, 0, r)
  resummarise(bucket, band, Math.min(from, to), Math.max(from, to) + 1)
}
