import { describe, expect, it } from 'vitest'
import { formatRate, JobSpec, TEST_TOKEN, type Address, type CapacityAdvert } from '@kiln/protocol'
import {
  createMatchingEngine,
  explainPlacement,
  explainUnplaced,
  IMAGE_CACHE_BYTES,
  type EngineInit,
  type PlaceJob,
  type ProviderInput,
} from '../src/index.ts'

describe('createMatchingEngine: hard constraints', () => {
  const cases: {
    name: string
    constraint: string
    job: Record<string, unknown>
    provider: Partial<Machine>
    opts?: (a: Address) => Record<string, unknown>
  }[] = [
    {
      name: 'GPU model list',
      constraint: 'gpu_model',
      job: { resources: { gpu: { count: 1, models: ['H100'] } } },
      provider: { gpus: [['RTX 4090', 24_564]] },
    },
    {
      name: 'minimum VRAM',
      constraint: 'gpu_vram',
      job: { resources: { gpu: { count: 1, minVramMb: 40_000 } } },
      provider: { gpus: [['RTX 4090', 24_564]] },
    },
    {
      name: 'GPU count on one provider',
      constraint: 'gpu_count',
      job: { resources: { gpu: { count: 2 } } },
      provider: { gpus: [['RTX 4090', 24_564]] },
    },
    { name: 'CPU', constraint: 'cpu', job: { resources: { cpu: 8 } }, provider: { cpu: 4 } },
    { name: 'memory', constraint: 'memory', job: { resources: { memoryMb: 16_384 } }, provider: { memoryMb: 8192 } },
    { name: 'region', constraint: 'region', job: { region: 'us-east' }, provider: { region: 'eu-west' } },
    { name: 'reputation floor', constraint: 'reputation', job: { minReputation: 0.8 }, provider: { reputation: 0.6 } },
    { name: 'maximum price', constraint: 'price', job: { maxPricePerHour: 100_000 }, provider: { price: 200_000 } },
    { name: 'escrow readiness', constraint: 'escrow', job: {}, provider: { escrowReady: false } },
    { name: 'availability', constraint: 'unavailable', job: {}, provider: { available: false } },
    { name: 'excluded providers', constraint: 'excluded', job: {}, provider: {}, opts: (a) => ({ exclude: [a] }) },
    {
      name: 'excluded operators',
      constraint: 'operator',
      job: {},
      provider: { operator: 'op-1' },
      opts: () => ({ excludeOperators: ['op-1'] }),
    },
    {
      name: 'network access (a provider takes no network job unless its advert says so)',
      constraint: 'network',
      job: { network: true },
      provider: {},
    },
  ]
  for (const c of cases) {
    it(`refuses a provider that fails the ${c.name}, and takes one that passes`, () => {
      const { engine, add, job } = setup()
      const failing = add(c.provider)
      const opts = c.opts?.(failing) ?? {}
      const refused = engine.place(job(c.job), opts)
      expect(refused.ok).toBe(false)
      if (!refused.ok) expect(refused.excluded).toEqual({ [c.constraint]: 1 })
      const passing = add({
        price: 90_000,
        gpus: [
          ['NVIDIA H100 80GB HBM3', 81_559],
          ['NVIDIA H100 80GB HBM3', 81_559],
        ],
        region: 'us-east',
        cpu: 32,
        memoryMb: 128_000,
        network: true,
      })
      const placed = engine.place(job(c.job), opts)
      expect(placed.ok && placed.provider.address).toBe(passing)
    })
  }

  it('applies the engine-wide reputation floor to every job', () => {
    const { engine, add, job } = setup({ minReputation: 0.5 })
    add({ reputation: 0.4 })
    const r = engine.place(job({}))
    expect(!r.ok && r.excluded).toEqual({ reputation: 1 })
  })

  it('counts a provider busy once its slots are taken, and free again on release', () => {
    const { engine, add, job } = setup()
    const p = add({ cpu: 64, memoryMb: 256_000 })
    expect(engine.place(job({}, 'a')).ok).toBe(true)
    const second = engine.place(job({}, 'b'))
    expect(!second.ok && second.excluded).toEqual({ busy: 1 })
    expect(engine.release('a')).toBe(true)
    expect(engine.place(job({}, 'b')).ok && engine.get(p)?.activeJobs).toBe(1)
  })
})

describe('createMatchingEngine: choice', () => {
  it('fits a job to the smallest adequate provider at equal price, keeping the big machine free', () => {
    const { engine, add, job } = setup()
    const big = add({
      cpu: 64,
      memoryMb: 256_000,
      gpus: Array.from({ length: 8 }, () => ['NVIDIA A100-SXM4-80GB', 81_920] as const),
    })
    const small = add({ cpu: 4, memoryMb: 8192 })
    const medium = add({ cpu: 16, memoryMb: 64_000 })
    expect(
      engine.place(job({ resources: { cpu: 2, memoryMb: 4096 } }, 'small')).ok && engine.get(small)?.activeJobs,
    ).toBe(1)
    // The small machine is now busy; the next CPU job still goes to the medium one, not the GPU box.
    const next = engine.place(job({ resources: { cpu: 2, memoryMb: 4096 } }, 'next'))
    expect(next.ok && next.provider.address).toBe(medium)
    const gpuJob = engine.place(job({ resources: { gpu: { count: 4 } } }, 'gpu'))
    expect(gpuJob.ok && gpuJob.provider.address).toBe(big)
  })

  it('packs jobs by free capacity when a provider runs several at once', () => {
    const { engine, add, job } = setup({ maxActiveJobs: 8 })
    const p = add({
      cpu: 8,
      memoryMb: 32_000,
      gpus: [
        ['RTX 4090', 24_564],
        ['RTX 4090', 24_564],
      ],
    })
    for (const id of ['g1', 'g2']) expect(engine.place(job({ resources: { gpu: { count: 1 } } }, id)).ok).toBe(true)
    const third = engine.place(job({ resources: { gpu: { count: 1 } } }, 'g3'))
    expect(!third.ok && third.excluded).toEqual({ gpu_count: 1 })
    expect(engine.get(p)?.free).toEqual({ cpu: 4, memoryMb: 32_000 - 2048, gpus: 0 })
  })

  it('scores price first, then reputation, load, recent success rate and latency', () => {
    const { engine, add, job } = setup()
    const [a, b] = [add({ price: 200_000 }), add({ price: 200_000 })]
    // A tie goes to the lower address, so that both strategies and every run agree.
    expect(dry(engine, job({}))).toBe(a)
    engine.setReputation(a, 0.5)
    expect(dry(engine, job({}))).toBe(b)
    engine.setReputation(a, 0.9)
    engine.setLoad(a, 0.5)
    expect(dry(engine, job({}))).toBe(b)
    engine.setLoad(a, 0)
    engine.setStats(a, { successRate: 0.8 })
    expect(dry(engine, job({}))).toBe(b)
    engine.setStats(a, { successRate: 1, latencyMs: 1000 })
    expect(dry(engine, job({}))).toBe(b)
    engine.setStats(b, { latencyMs: 1500 })
    expect(dry(engine, job({}))).toBe(a)
    // A cheaper provider wins over a more reputable one: price dominates.
    const cheap = add({ price: 100_000, reputation: 0.7 })
    expect(dry(engine, job({}))).toBe(cheap)
  })

  it('places a verification replica on a provider of a different operator', () => {
    const { engine, add, job } = setup()
    const primary = add({ price: 100_000, operator: 'alice' })
    const sameOperator = add({ price: 110_000, operator: 'alice' })
    const other = add({ price: 500_000, operator: 'bob' })
    const first = engine.place(job({}, 'j1'))
    expect(first.ok && first.provider.address).toBe(primary)
    const replica = engine.place(job({}, 'j1-replica'), { replicaOf: primary })
    expect(replica.ok && replica.provider.address).toBe(other)
    expect(sameOperator).not.toBe(other)
    // The operator is remembered after the primary's provider leaves the network.
    engine.release('j1-replica')
    engine.remove(primary)
    const again = engine.place(job({}, 'j1-replica2'), { replicaOf: primary })
    expect(again.ok && again.provider.address).toBe(other)
  })

  it('re-indexes a provider whose price or region changes', () => {
    const { engine, add, job, advert } = setup()
    const a = add({ price: 100_000 })
    const b = add({ price: 200_000 })
    expect(dry(engine, job({}))).toBe(a)
    engine.upsert({ address: a, advert: advert({ price: 300_000 }) })
    expect(dry(engine, job({}))).toBe(b)
    engine.upsert({ address: b, advert: advert({ price: 200_000, region: 'us-east' }) })
    expect(dry(engine, job({ region: 'eu-west' }))).toBe(a)
  })

  it('re-indexes a provider that starts or stops taking network jobs', () => {
    const { engine, add, job, advert } = setup()
    const cheap = add({ price: 100_000 })
    const dear = add({ price: 200_000, network: true })
    expect(dry(engine, job({}))).toBe(cheap)
    expect(dry(engine, job({ network: true }))).toBe(dear)
    engine.upsert({ address: cheap, advert: advert({ price: 100_000, network: true }) })
    expect(dry(engine, job({ network: true }))).toBe(cheap)
    engine.upsert({ address: cheap, advert: advert({ price: 100_000 }) })
    engine.upsert({ address: dear, advert: advert({ price: 200_000 }) })
    const r = engine.place(job({ network: true }))
    expect(!r.ok && r.excluded).toEqual({ network: 2 })
    if (!r.ok)
      expect(explainUnplaced(r, (n) => formatRate(n, TEST_TOKEN))).toMatch(
        /^none of 2 providers fits \(excluded by: 2 network \(they take no jobs with network access\)\); nearest: .* fails network$/,
      )
  })

  it('matches a job only to providers that can post its bond at their own price, and says so when none can', () => {
    const { engine, add, job, advert } = setup()
    const poor = add({ price: 100_000, maxBond: 999 })
    const rich = add({ price: 200_000, maxBond: 2000 })
    // The bond grows with the provider's price, as a bond ratio of the lock does.
    const bonded = (id?: string) => ({ ...job({}, id), bondAt: (price: number) => price / 100 })
    expect(dry(engine, job({}))).toBe(poor)
    expect(dry(engine, bonded())).toBe(rich)
    engine.upsert({ address: rich, advert: advert({ price: 200_000, maxBond: 1999 }) })
    const r = engine.place(bonded())
    expect(!r.ok && r.excluded).toEqual({ bond: 2 })
    if (!r.ok)
      expect(explainUnplaced(r, (n) => formatRate(n, TEST_TOKEN))).toMatch(
        /^none of 2 providers fits \(excluded by: 2 bond \(cannot post the bond\)\); nearest: .* fails bond$/,
      )
    // Funded: a newer advert with room for the bond makes it eligible again.
    engine.upsert({ address: poor, advert: advert({ price: 100_000, maxBond: 1000 }) })
    expect(dry(engine, bonded())).toBe(poor)
    // An advert that does not say (an older provider) sets no limit.
    const old = add({ price: 50_000 })
    expect(dry(engine, bonded())).toBe(old)
  })

  it('explains a job that fits nowhere: counts per constraint and the nearest offers', () => {
    const { engine, add, job } = setup()
    add({ price: 100_000, memoryMb: 4096 })
    add({ price: 900_000, memoryMb: 4096 })
    add({ price: 50_000, memoryMb: 128_000, region: 'us-east' })
    const r = engine.place(job({ maxPricePerHour: 500_000, region: 'eu-west', resources: { memoryMb: 64_000 } }))
    expect(r.ok).toBe(false)
    if (r.ok) return
    expect(r.total).toBe(3)
    expect(r.excluded).toEqual({ memory: 2, price: 1, region: 1 })
    expect(r.nearest.map((n) => [n.pricePerHour, n.fails])).toEqual([
      [50_000, ['region']],
      [100_000, ['memory']],
      [900_000, ['price', 'memory']],
    ])
    expect(explainUnplaced(r, (n) => formatRate(n, TEST_TOKEN))).toMatch(
      /none of 3 providers fits \(excluded by: 2 memory, 1 price, 1 region\); nearest: .* at 0\.05 tUSDC\/h fails region/,
    )
    expect(engine.stats().reservations).toBe(0)
  })

  it('does not look at every provider to place a job', () => {
    const { engine, add, job } = setup()
    for (let i = 0; i < 2000; i++) {
      const region = ['eu-west', 'us-east', 'ap-south', 'us-west'][(i >> 1) % 4]!
      add(
        i % 2
          ? { region, price: 100_000 + i * 37 }
          : { region, price: 300_000 + i, gpus: [['RTX 4090', 24_564]], cpu: 16, memoryMb: 64_000 },
      )
    }
    for (let i = 0; i < 100; i++)
      expect(
        engine.place(job({ region: i % 3 ? 'us-east' : undefined, resources: { gpu: { count: i % 2 } } }, `j${i}`)).ok,
      ).toBe(true)
    // 2,000 providers; a scan would look at every one of them for every job.
    expect(engine.stats().examined / 100).toBeLessThan(100)
  })
})

describe('createMatchingEngine: cache-aware placement', () => {
  const WEIGHTS = 'a'.repeat(64)
  const DATA = 'b'.repeat(64)
  const GiB = 1024 ** 3
  const inputs = [
    { name: 'weights', source: 'upload', sha256: WEIGHTS, size: 7 * GiB },
    { name: 'data', source: 'upload', sha256: DATA, size: 200 * 1024 ** 2 },
  ]
  const placed = (r: ReturnType<ReturnType<typeof createMatchingEngine>['place']>) => {
    if (!r.ok) throw new Error('expected a placement')
    return r
  }

  it('prefers a holder within the tolerance over a cheaper provider that holds nothing, and says why', () => {
    const { engine, add, job } = setup()
    add({ price: 100_000 })
    const holder = add({ price: 115_000, cache: { images: ['kiln/matmul:1'], inputs: [WEIGHTS] } })
    const j = job({ inputs })
    const r = placed(engine.place(j, { dryRun: true }))
    expect(r.provider.address).toBe(holder)
    expect(r.reason).toEqual({
      by: 'cache',
      cached: { image: true, inputs: ['weights'], bytes: 7 * GiB },
      tolerance: 0.2,
      holders: 1,
      cheapestPerHour: 100_000,
    })
    expect(explainPlacement(r, j)).toBe(
      'placed on prov00001: has the weights and the image cached (7.0 GiB), 15% above the cheapest fitting offer (within 20%)',
    )
  })

  it('keeps the usual choice when every holder is dearer than the tolerance allows', () => {
    const { engine, add, job } = setup()
    const cheap = add({ price: 100_000 })
    add({ price: 121_000, cache: { inputs: [WEIGHTS, DATA] } })
    const j = job({ inputs })
    const r = placed(engine.place(j, { dryRun: true }))
    expect(r.provider.address).toBe(cheap)
    expect(r.reason).toMatchObject({ by: 'score', holders: 1, cheapestPerHour: 100_000 })
    expect(r.reason.cached).toEqual({ image: false, inputs: [], bytes: 0 })
    expect(explainPlacement(r, j)).toBe(
      'placed on prov00000: best offer by price, fit and reliability; the fitting provider that has the image or inputs cached costs more than 20% above the cheapest fitting offer',
    )
    // A wider tolerance lets it in.
    expect(dry(engine, job({ inputs, placement: { cacheTolerance: 0.25 } }))).not.toBe(cheap)
  })

  it('ignores caches with a tolerance of 0', () => {
    const { engine, add, job } = setup()
    const cheap = add({ price: 100_000 })
    add({ price: 100_001, cache: { images: ['kiln/matmul:1'], inputs: [WEIGHTS, DATA] } })
    const j = job({ inputs, placement: { cacheTolerance: 0 } })
    const r = placed(engine.place(j, { dryRun: true }))
    expect(r.provider.address).toBe(cheap)
    expect(r.reason).toEqual({ by: 'score', cached: { image: false, inputs: [], bytes: 0 }, tolerance: 0, holders: 0 })
    expect(explainPlacement(r, j)).toBe(
      'placed on prov00000: best offer by price, fit and reliability (cache preference off)',
    )
  })

  it('among holders, the one holding the most bytes wins, then the better score; the image counts as 1 GiB', () => {
    const { engine, add, job } = setup()
    add({ price: 100_000 })
    const imageOnly = add({ price: 101_000, cache: { images: ['kiln/matmul:1'] } })
    const dataOnly = add({ price: 102_000, cache: { inputs: [DATA] } })
    // 200 MiB of data is less than an image's 1 GiB.
    expect(dry(engine, job({ inputs }))).toBe(imageOnly)
    const weights = add({ price: 119_000, cache: { inputs: [WEIGHTS] } })
    expect(dry(engine, job({ inputs }))).toBe(weights)
    // Equal holdings: the usual score decides (here the cheaper one).
    const weightsCheaper = add({ price: 110_000, cache: { inputs: [WEIGHTS] } })
    expect(dry(engine, job({ inputs }))).toBe(weightsCheaper)
    expect(IMAGE_CACHE_BYTES).toBe(GiB)
    expect(dataOnly).not.toBe(weights)
  })

  it('does not let a holder break a hard constraint, and takes the next one that fits', () => {
    const { engine, add, job } = setup()
    add({ price: 100_000 })
    add({ price: 105_000, memoryMb: 512, cache: { inputs: [WEIGHTS] } })
    const fitting = add({ price: 110_000, cache: { inputs: [DATA] } })
    expect(dry(engine, job({ inputs }))).toBe(fitting)
    // Busy once it takes the job: the next one goes back to the cheapest.
    expect(placed(engine.place(job({ inputs }, 'first'))).provider.address).toBe(fitting)
    expect(placed(engine.place(job({ inputs }, 'second'))).reason.by).toBe('score')
  })

  it('places a job with no inputs on providers with no cache as before, and a holder of its image at the same price', () => {
    const { engine, add, job } = setup()
    const a = add({ price: 200_000 })
    add({ price: 200_000 })
    const j = job({})
    const r = placed(engine.place(j, { dryRun: true }))
    expect(r.provider.address).toBe(a)
    expect(r.reason).toEqual({
      by: 'score',
      cached: { image: false, inputs: [], bytes: 0 },
      tolerance: 0.2,
      holders: 0,
    })
    expect(explainPlacement(r, j)).toBe(
      'placed on prov00000: best offer by price, fit and reliability; no fitting provider has the image cached',
    )
    const img = add({ price: 200_000, cache: { images: ['kiln/matmul:1'] } })
    const r2 = placed(engine.place(j, { dryRun: true }))
    expect(r2.provider.address).toBe(img)
    expect(explainPlacement(r2, j)).toBe('placed on prov00002: has the image cached, also the cheapest fitting offer')
  })

  it('forgets what a provider held once a newer advert drops it, or the provider leaves', () => {
    const { engine, add, job, advert } = setup()
    const cheap = add({ price: 100_000 })
    const holder = add({ price: 110_000, cache: { inputs: [WEIGHTS] } })
    expect(dry(engine, job({ inputs }))).toBe(holder)
    engine.upsert({ address: holder, advert: advert({ price: 110_000 }) })
    expect(dry(engine, job({ inputs }))).toBe(cheap)
    engine.upsert({ address: holder, advert: advert({ price: 110_000, cache: { inputs: [DATA] } }) })
    expect(dry(engine, job({ inputs }))).toBe(holder)
    engine.remove(holder)
    expect(dry(engine, job({ inputs }))).toBe(cheap)
  })
})

type Machine = {
  cpu: number
  memoryMb: number
  gpus: (readonly [string, number])[]
  price: number
  region: string
  reputation: number
  escrowReady: boolean
  available: boolean
  operator: string
  network: boolean
  maxBond: number
  /** Images and input digests it holds. */
  cache: { images?: string[]; inputs?: string[] }
}

function dry(engine: ReturnType<typeof createMatchingEngine>, j: PlaceJob): Address | undefined {
  const r = engine.place(j, { dryRun: true })
  return r.ok ? r.provider.address : undefined
}

function setup(init: EngineInit = {}) {
  const engine = createMatchingEngine(init)
  let n = 0
  const advert = (m: Partial<Machine>): CapacityAdvert => {
    const gpus = (m.gpus ?? []).map(([model, vramMb], index) => ({ index, model, vramMb }))
    const cpu = m.cpu ?? 4
    const memoryMb = m.memoryMb ?? 8192
    return {
      peerId: 'x',
      addrs: [],
      seq: 1,
      region: m.region ?? 'eu-west',
      version: '0.1.0',
      available: m.available ?? true,
      pricePerHour: m.price ?? 100_000,
      hardware: { cpuCores: cpu, memoryMb, diskMb: 100_000, gpus },
      free: { cpu, memoryMb, gpus: gpus.length },
      ...(m.network ? { network: true } : {}),
      ...(m.maxBond !== undefined ? { maxBond: m.maxBond } : {}),
      ...(m.cache ? { cache: { images: m.cache.images ?? [], inputs: m.cache.inputs ?? [] } } : {}),
    }
  }
  const add = (m: Partial<Machine>): Address => {
    const address = `prov${String(n++).padStart(5, '0')}` as Address
    const input: ProviderInput = {
      address,
      advert: advert(m),
      reputation: m.reputation ?? 0.9,
      escrowReady: m.escrowReady ?? true,
    }
    if (m.operator) input.operator = m.operator
    engine.upsert(input)
    return address
  }
  let jobs = 0
  const job = (over: Record<string, unknown>, id = `job${jobs++}`): PlaceJob => {
    const { minReputation, resources, ...rest } = over
    const parsed = JobSpec.parse({
      image: 'kiln/matmul:1',
      maxPricePerHour: 1_000_000,
      ...rest,
      resources: { cpu: 2, memoryMb: 1024, ...(resources as object | undefined) },
    })
    return { id, spec: parsed, ...(typeof minReputation === 'number' ? { minReputation } : {}) }
  }
  return { engine, add, job, advert }
}
