import { describe, expect, it } from 'vitest'
import { JobSpec, type Address, type CapacityAdvert } from '@kiln/protocol'
import { createMatchingEngine, type MatchingEngine, type PlaceOptions, type ProviderInput } from '../src/index.ts'
import { mulberry32 } from '../../../test/support/prng.ts'

/**
 * The index must never change the answer: for random providers, jobs and events, the indexed
 * engine and the scan-and-sort baseline choose the same provider with the same score (ties
 * go to the lower address), and fail with the same explanation.
 */
describe('indexed engine vs scan of every provider', () => {
  // Seeds 1-6: varied machines. Seeds 7-8: many alike machines, so buckets split into price bands.
  for (const [seed, count, alike] of [
    [1, 150, false],
    [2, 150, false],
    [3, 150, false],
    [4, 150, false],
    [5, 150, false],
    [6, 150, false],
    [7, 700, true],
    [8, 700, true],
  ] as const) {
    it(`chooses as the scan does (seed ${seed}, ${count} ${alike ? 'alike' : 'varied'} providers)`, () => {
      const { rand, pick, provider, job } = setup(seed, alike)
      const indexed = createMatchingEngine()
      const scan = createMatchingEngine({ strategy: 'scan' })
      const both = (f: (e: MatchingEngine) => void) => {
        f(indexed)
        f(scan)
      }
      const takesNetwork = new Map<Address, boolean>()
      const bondCap = new Map<Address, number | undefined>()
      const upsert = (p: ProviderInput) => {
        takesNetwork.set(p.address, p.advert.network === true)
        bondCap.set(p.address, p.advert.maxBond)
        both((e) => e.upsert(p))
      }
      const addresses: Address[] = []
      for (let i = 0; i < count; i++) {
        const p = provider(i)
        addresses.push(p.address)
        upsert(p)
      }
      const live: string[] = []
      let placed = 0
      let networkPlaced = 0
      let bondRefused = 0
      const byCache = { cache: 0, outside: 0 }
      for (let step = 0; step < 1500; step++) {
        const roll = rand()
        if (roll < 0.55) {
          const j = job(`j${step}`)
          const opts: PlaceOptions = {}
          if (rand() < 0.15) opts.exclude = [pick(addresses), pick(addresses)]
          if (rand() < 0.15) opts.replicaOf = pick(addresses)
          const a = indexed.place(j, opts)
          const b = scan.place(j, opts)
          expect(a).toEqual(b)
          if (a.ok) {
            live.push(j.id)
            placed++
          }
          if (a.ok && j.bondAt) {
            const maxBond = bondCap.get(a.provider.address)
            expect(maxBond === undefined || j.bondAt(a.pricePerHour) <= maxBond).toBe(true)
          }
          if (!a.ok && a.excluded.bond) bondRefused++
          if (a.ok && a.reason.by === 'cache') byCache.cache++
          if (a.ok && a.reason.by === 'score' && a.reason.holders > 0) byCache.outside++
          if (a.ok && j.spec.network) {
            expect(takesNetwork.get(a.provider.address)).toBe(true)
            networkPlaced++
          }
        } else if (roll < 0.75 && live.length > 0) {
          const id = live.splice(Math.floor(rand() * live.length), 1)[0]!
          both((e) => e.release(id))
        } else if (roll < 0.85) {
          // A newer advert: price, region, GPUs, availability or network jobs may change.
          const i = Math.floor(rand() * addresses.length)
          upsert(provider(i))
        } else if (roll < 0.9) {
          const a = pick(addresses)
          const rep = pick([0.2, 0.5, 0.9, 1])
          both((e) => e.setReputation(a, rep))
        } else if (roll < 0.94) {
          const a = pick(addresses)
          const stats = { successRate: pick([0.5, 0.9, 1]), latencyMs: pick([0, 50, 400, 5000]) }
          both((e) => e.setStats(a, stats))
        } else if (roll < 0.97) {
          const a = pick(addresses)
          const load = pick([0, 0.5, 1])
          both((e) => e.setLoad(a, load))
        } else {
          const a = pick(addresses)
          const ready = rand() < 0.7
          both((e) => e.setEscrowReady(a, ready))
        }
      }
      expect(placed).toBeGreaterThan(200)
      expect(networkPlaced).toBeGreaterThan(20)
      expect(bondRefused).toBeGreaterThan(0)
      // The cache rule decided some placements, and some holders were too dear for it.
      expect(byCache.cache).toBeGreaterThan(10)
      expect(byCache.outside).toBeGreaterThan(0)
      for (const a of addresses) expect(indexed.get(a)).toEqual(scan.get(a))
      // And the index did less work than the scan.
      expect(indexed.stats().examined).toBeLessThan(scan.stats().examined / 2)
    })
  }
})

const IMAGES = ['kiln/matmul:1', 'kiln/infer:1', 'kiln/train:2']
const DIGESTS = ['1', '2', '3', '4', '5'].map((c) => c.repeat(64))
// Equal sizes on purpose too: equal held bytes fall back to the score, then the address.
const SIZES = [0, 1024, 2 * 1024 ** 3, 2 * 1024 ** 3, 8 * 1024 ** 3]

/** A random subset, in a random order. */
function some<T>(rand: () => number, xs: readonly T[]): T[] {
  return xs.filter(() => rand() < 0.35).sort(() => rand() - 0.5)
}

function setup(seed: number, alike: boolean) {
  const rand = mulberry32(seed)
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!
  const gpuKinds: [string, number][] = [
    ['NVIDIA GeForce RTX 4090', 24_564],
    ['NVIDIA A100-SXM4-80GB', 81_920],
    ['NVIDIA L4', 23_034],
  ]
  const regions = ['eu-west', 'us-east', 'ap-south']
  const provider = (i: number): ProviderInput => {
    // Few distinct values on purpose: equal prices and shapes make exact score ties.
    const cpu = alike ? 4 : pick([2, 4, 16, 64])
    const memoryMb = alike ? 16_384 : pick([4096, 16_384, 65_536])
    const gpus =
      alike || rand() < 0.5
        ? []
        : Array.from({ length: pick([1, 2, 4, 8]) }, (_, index) => ({
            index,
            model: gpuKinds[i % 3]![0],
            vramMb: gpuKinds[i % 3]![1],
          }))
    const advert: CapacityAdvert = {
      peerId: 'x',
      addrs: [],
      seq: 1,
      region: alike ? regions[i % 2]! : pick(regions),
      version: '0.1.0',
      available: rand() < 0.95,
      pricePerHour: alike ? 100_000 + 1000 * Math.floor(rand() * 50) : pick([100_000, 200_000, 250_000, 400_000]),
      hardware: { cpuCores: cpu, memoryMb, diskMb: 0, gpus },
      free: { cpu: rand() < 0.8 ? cpu : cpu / 2, memoryMb, gpus: gpus.length },
      // Most providers take no network jobs (the default); a newer advert may change that.
      ...(rand() < 0.35 ? { network: true } : {}),
      // Some say how large a bond they can post (a newer advert may change it); the rest set no limit.
      ...(rand() < 0.6 ? { maxBond: pick([0, 5000, 20_000, 100_000]) } : {}),
      // A fifth hold something: a few images and digests shared by many, so holders compete.
      ...(rand() < 0.2 ? { cache: { images: some(rand, IMAGES), inputs: some(rand, DIGESTS) } } : {}),
    }
    return {
      address: `p${String(i).padStart(4, '0')}` as Address,
      advert,
      operator: `op${i % 40}`,
      reputation: pick([0.3, 0.6, 0.9]),
      maxActiveJobs: pick([1, 2, 4]),
    }
  }
  const job = (id: string) => {
    const gpu =
      rand() < 0.5
        ? {
            count: pick([1, 2, 4]),
            models: rand() < 0.5 ? [] : [pick(['4090', 'a100', 'L4', 'h100'])],
            minVramMb: pick([0, 0, 24_000, 40_000]),
          }
        : undefined
    const spec = JobSpec.parse({
      image: pick(IMAGES),
      maxPricePerHour: pick([150_000, 300_000, 1_000_000]),
      resources: { cpu: pick([0.5, 1, 2, 8]), memoryMb: pick([512, 4096, 16_384]), ...(gpu ? { gpu } : {}) },
      ...(rand() < 0.4 ? { region: pick(regions) } : {}),
      ...(rand() < 0.3 ? { network: true } : {}),
      inputs: some(rand, DIGESTS).map((sha256, i) => ({ name: `in${i}`, source: 'upload', sha256, size: pick(SIZES) })),
      ...(rand() < 0.7 ? { placement: { cacheTolerance: pick([0, 0.05, 0.2, 1]) } } : {}),
    })
    // Most jobs ask a bond, a share of the run's lock at the provider's price or a fixed one.
    const ratio = pick([0, 0.05, 0.2, 1])
    const fixed = pick([undefined, 10_000])
    const bondAt = rand() < 0.8 ? { bondAt: (price: number) => fixed ?? Math.ceil(price * ratio) } : {}
    return { id, spec, ...bondAt, ...(rand() < 0.3 ? { minReputation: pick([0.5, 0.8]) } : {}) }
  }
  return { rand, pick, provider, job }
}
