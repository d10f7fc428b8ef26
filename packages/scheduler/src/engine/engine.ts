import type { Address, JobSpec } from '@kiln/protocol'
import { createBucketIndex, type Best } from './buckets.ts'
import { cachedOf, createCacheIndex, heldWeight } from './cache.ts'
import {
  applyInput,
  failures,
  fits,
  gpuSignature,
  jobCtx,
  newRecord,
  refresh,
  scoreOf,
  viewOf,
  type JobCtx,
  type ProviderRecord,
} from './record.ts'
import {
  DEFAULT_WEIGHTS,
  type EngineConstraint,
  type EngineInit,
  type MatchingEngine,
  type PlaceJob,
  type PlaceOptions,
  type Placed,
  type PlacementReason,
  type Unplaced,
} from './types.ts'

interface Choice extends Best {
  reason: PlacementReason
}

function reasonOf(c: Best, j: JobCtx, by: PlacementReason['by'], holders: number, cheapest: number): Choice {
  const reason: PlacementReason = { by, cached: cachedOf(c.rec.held, j.need), tolerance: j.need.tolerance, holders }
  if (holders > 0) reason.cheapestPerHour = cheapest
  return { rec: c.rec, s: c.s, reason }
}

/**
 * The cache rule, given the fitting providers that hold something of the job and the
 * cheapest fitting price: among the holders at most `tolerance` dearer than that, the one
 * holding the most bytes, then the best score, then the lower address. None: the usual choice stands.
 */
function byCache(holders: readonly ProviderRecord[], j: JobCtx, cheapest: number, wFit: number): Best | undefined {
  const cap = cheapest * (1 + j.need.tolerance)
  let best: Best | undefined
  let bestW = -1
  for (const r of holders) {
    if (r.price > cap) continue
    const w = heldWeight(r.held, j.need)
    const s = scoreOf(r, j, wFit)
    if (!best || w > bestW || (w === bestW && (s < best.s || (s === best.s && r.address < best.rec.address)))) {
      best = { rec: r, s }
      bestW = w
    }
  }
  return best
}

interface Reservation {
  rec: ProviderRecord
  cpu: number
  mem: number
  gpus: number
}

/**
 * The matching engine: a pure, in-memory view of the providers, fed by adverts and events,
 * that places jobs (see buckets.ts for how the index avoids looking at every provider).
 * No I/O and no clock: the coordinator calls it from one place and persists the outcome.
 */
export function createMatchingEngine(init: EngineInit = {}): MatchingEngine {
  const w = { ...DEFAULT_WEIGHTS, ...init.weights }
  const defaults = {
    maxActiveJobs: init.maxActiveJobs ?? 1,
    defaultReputation: init.defaultReputation ?? 0.5,
    defaultSuccessRate: init.defaultSuccessRate ?? 1,
    latencyCapMs: init.latencyCapMs ?? 2000,
  }
  const floor = init.minReputation ?? 0
  const records = new Map<Address, ProviderRecord>()
  // Kept after a provider leaves, so that a replica of its job still avoids its operator.
  const operators = new Map<Address, string>()
  const reservations = new Map<string, Reservation>()
  const index = init.strategy === 'scan' ? undefined : createBucketIndex(w.fit)
  // Who holds which image and input: the indexed strategy looks up a job's holders here.
  const cache = index ? createCacheIndex<ProviderRecord>() : undefined
  let placements = 0
  let scanned = 0
  let holderChecks = 0

  const operatorOf = (a: Address) => operators.get(a) ?? a
  const ctx = (job: PlaceJob, opts: PlaceOptions) => jobCtx(job, opts, w, floor, operatorOf)

  /** Applies `change` to a known provider and keeps the index in step. */
  const touch = (address: Address, change: (r: ProviderRecord) => void) => {
    const r = records.get(address)
    if (!r) return
    change(r)
    refresh(r, w, defaults.latencyCapMs)
    index?.changed(r)
  }

  /** The baseline: check every provider, sort the ones that fit by score, then apply the cache rule to them all. */
  const scanAll = (j: JobCtx): Choice | undefined => {
    const fit: Best[] = []
    for (const r of records.values()) {
      scanned++
      if (failures(r, j).length === 0) fit.push({ rec: r, s: scoreOf(r, j, w.fit) })
    }
    fit.sort((x, y) => x.s - y.s || (x.rec.address < y.rec.address ? -1 : 1))
    if (!fit[0]) return undefined
    if (j.need.tolerance === 0) return reasonOf(fit[0], j, 'score', 0, 0)
    const holders = fit.filter((c) => heldWeight(c.rec.held, j.need) >= 0).map((c) => c.rec)
    const cheapest = Math.min(...fit.map((c) => c.rec.price))
    const held = byCache(holders, j, cheapest, w.fit)
    return held
      ? reasonOf(held, j, 'cache', holders.length, cheapest)
      : reasonOf(fit[0], j, 'score', holders.length, cheapest)
  }

  /**
   * The index's choice: the job's holders come from the cache index and are checked one by
   * one; only when one fits does the index look for a cheaper fitting price (below the
   * cheapest holder's), and the usual search runs only when no holder wins.
   */
  const searchIndexed = (j: JobCtx): Choice | undefined => {
    const holders: ProviderRecord[] = []
    let cheapest = Infinity
    if (j.need.tolerance > 0)
      cache!.holders(j.need, (r) => {
        holderChecks++
        if (!fits(r, j)) return
        holders.push(r)
        if (r.price < cheapest) cheapest = r.price
      })
    if (holders.length > 0) {
      cheapest = index!.cheapest(j, cheapest)
      const held = byCache(holders, j, cheapest, w.fit)
      if (held) return reasonOf(held, j, 'cache', holders.length, cheapest)
    }
    const best = index!.search(j)
    return best && reasonOf(best, j, 'score', holders.length, cheapest)
  }

  const explainCtx = (j: JobCtx): Unplaced => {
    const excluded: Partial<Record<EngineConstraint, number>> = {}
    const near: { provider: Address; pricePerHour: number; fails: EngineConstraint[] }[] = []
    for (const r of records.values()) {
      const fails = failures(r, j)
      if (fails.length === 0) continue
      for (const f of fails) excluded[f] = (excluded[f] ?? 0) + 1
      near.push({ provider: r.address, pricePerHour: r.price, fails })
    }
    near.sort(
      (x, y) =>
        x.fails.length - y.fails.length || x.pricePerHour - y.pricePerHour || (x.provider < y.provider ? -1 : 1),
    )
    return { ok: false, total: records.size, excluded, nearest: near.slice(0, 3) }
  }

  const reserve = (jobId: string, r: ProviderRecord, j: JobCtx) => {
    if (reservations.has(jobId)) throw new Error(`job ${jobId} already holds a reservation; release it first`)
    reservations.set(jobId, { rec: r, cpu: j.cpu, mem: j.mem, gpus: j.gpus })
    r.resCpu += j.cpu
    r.resMem += j.mem
    r.resGpus += j.gpus
    r.active++
    refresh(r, w, defaults.latencyCapMs)
    index?.changed(r)
  }

  return {
    upsert(p) {
      operators.set(p.address, p.operator ?? operators.get(p.address) ?? p.address)
      const prev = records.get(p.address)
      if (!prev) {
        const r = newRecord(p, defaults)
        refresh(r, w, defaults.latencyCapMs)
        records.set(p.address, r)
        index?.add(r)
        cache?.add(r)
        return
      }
      // A new price or new bucket means a new place in the index; anything else is an update in place.
      const moves =
        prev.price !== p.advert.pricePerHour ||
        prev.region !== p.advert.region ||
        prev.gpuSig !== gpuSignature(p.advert.hardware.gpus) ||
        prev.network !== (p.advert.network === true)
      if (moves) index?.remove(prev)
      cache?.drop(prev)
      applyInput(prev, p)
      cache?.add(prev)
      refresh(prev, w, defaults.latencyCapMs)
      if (moves) index?.add(prev)
      else index?.changed(prev)
    },
    remove(address) {
      const r = records.get(address)
      if (!r) return false
      index?.remove(r)
      cache?.drop(r)
      records.delete(address)
      return true
    },
    setReputation(address, reputation) {
      touch(address, (r) => {
        r.reputation = reputation
      })
    },
    setStats(address, stats) {
      touch(address, (r) => {
        if (stats.successRate !== undefined) r.successRate = stats.successRate
        if (stats.latencyMs !== undefined) r.latencyMs = stats.latencyMs
      })
    },
    setLoad(address, load) {
      touch(address, (r) => {
        r.reportedLoad = Math.min(1, Math.max(0, load))
      })
    },
    setEscrowReady(address, ready) {
      touch(address, (r) => {
        r.escrowReady = ready
      })
    },

    place(job, opts = {}) {
      if (!opts.dryRun && reservations.has(job.id))
        throw new Error(`job ${job.id} already holds a reservation; release it first`)
      const j = ctx(job, opts)
      const best = index ? searchIndexed(j) : scanAll(j)
      if (!best)
        return opts.explain === false ? { ok: false, total: records.size, excluded: {}, nearest: [] } : explainCtx(j)
      if (!opts.dryRun) {
        reserve(job.id, best.rec, j)
        placements++
      }
      return { ok: true, provider: viewOf(best.rec), pricePerHour: best.rec.price, score: best.s, reason: best.reason }
    },
    assign(job, address) {
      const r = records.get(address)
      if (!r) return false
      reserve(job.id, r, ctx(job, {}))
      return true
    },
    release(jobId) {
      const res = reservations.get(jobId)
      if (!res) return false
      reservations.delete(jobId)
      const r = res.rec
      r.resCpu -= res.cpu
      r.resMem -= res.mem
      r.resGpus -= res.gpus
      r.active--
      // A provider that left keeps no place in the index; its record is simply dropped.
      if (records.get(r.address) === r) {
        refresh(r, w, defaults.latencyCapMs)
        index?.changed(r)
      }
      return true
    },
    explain(job, opts = {}) {
      return explainCtx(ctx(job, opts))
    },
    get(address) {
      const r = records.get(address)
      return r && viewOf(r)
    },
    stats() {
      return {
        providers: records.size,
        reservations: reservations.size,
        placements,
        examined: index ? index.examined() + holderChecks : scanned,
      }
    },
  }
}

/** A one-line reason for a job that cannot be placed, for logs and the CLI; `rate` shows a price per hour in the marketplace's unit. */
export function explainUnplaced(r: Unplaced, rate: (unitsPerHour: number) => string): string {
  if (r.total === 0) return 'no provider is online; the job waits and is matched when one comes'
  // "network" alone would read like a connectivity problem; it is the providers' own choice.
  const label = (k: string) =>
    k === 'network'
      ? 'network (they take no jobs with network access)'
      : k === 'bond'
        ? 'bond (cannot post the bond)'
        : k
  const parts = Object.entries(r.excluded)
    .sort((a, b) => (b[1] ?? 0) - (a[1] ?? 0))
    .map(([k, n]) => `${n} ${label(k)}`)
  const near = r.nearest[0]
  const nearest = near ? `; nearest: ${near.provider} at ${rate(near.pricePerHour)} fails ${near.fails.join(', ')}` : ''
  return `none of ${r.total} providers fits (excluded by: ${parts.join(', ')})${nearest}`
}

/**
 * A one-line reason for a placement, for the job's event and the logs, e.g. "placed on
 * prov…0042: has the weights and the image cached (7.5 GiB), 12% above the cheapest fitting
 * offer" or "placed on prov…0007: best offer by price, fit and reliability; no fitting
 * provider has the image or inputs cached".
 */
export function explainPlacement(placed: Placed, job: { spec: Pick<JobSpec, 'inputs'> }): string {
  const r = placed.reason
  const head = `placed on ${shortAddress(placed.provider.address)}`
  const held = [...r.cached.inputs.map((n) => `the ${n}`), ...(r.cached.image ? ['the image'] : [])]
  const holds = held.length
    ? `has ${listOf(held)} cached${r.cached.bytes > 0 ? ` (${bytesOf(r.cached.bytes)})` : ''}`
    : ''
  const pct = `${Math.round(r.tolerance * 100)}%`
  if (r.by === 'cache') {
    const cheapest = r.cheapestPerHour ?? placed.pricePerHour
    const above = cheapest > 0 ? Math.round(((placed.pricePerHour - cheapest) / cheapest) * 100) : 0
    const price =
      placed.pricePerHour <= cheapest
        ? 'also the cheapest fitting offer'
        : `${above}% above the cheapest fitting offer (within ${pct})`
    return `${head}: ${holds}, ${price}`
  }
  const what = job.spec.inputs.length > 0 ? 'the image or inputs' : 'the image'
  const why =
    r.tolerance === 0
      ? ' (cache preference off)'
      : r.holders === 0
        ? `; no fitting provider has ${what} cached`
        : `; the ${r.holders === 1 ? 'fitting provider that has' : `${r.holders} fitting providers that have`} ${what} cached ${r.holders === 1 ? 'costs' : 'cost'} more than ${pct} above the cheapest fitting offer`
  return `${head}: best offer by price, fit and reliability${why}${holds ? `; it ${holds}` : ''}`
}

const shortAddress = (a: string) => (a.length > 12 ? `${a.slice(0, 4)}…${a.slice(-4)}` : a)

const listOf = (xs: readonly string[]) =>
  xs.length < 2 ? xs.join('') : `${xs.slice(0, -1).join(', ')} and ${xs.at(-1)}`

function bytesOf(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let u = 0
  while (n >= 1024 && u < units.length - 1) {
    n /= 1024
    u++
  }
  return `${u === 0 ? n : n.toFixed(1)} ${units[u]}`
}
