import { describe, expect, it } from 'vitest'
import { Identity, JobSpec, type Address, type CapacityAdvert } from '@kiln/protocol'
import { explainNoMatch, matchJob, type ProviderCandidate } from '../src/index.ts'

describe('matchJob', () => {
  it('takes the cheapest provider that fits', () => {
    const { providers, spec } = setup()
    const r = matchJob(spec({}), [providers.cheapSmall, providers.pricey, providers.big])
    expect(r.ok && r.provider.address).toBe(providers.cheapSmall.address)
  })

  it('fits a small job on the smallest adequate machine at equal price', () => {
    const { providers, spec } = setup()
    const r = matchJob(spec({}), [providers.big, providers.sameAsBigButSmall])
    expect(r.ok && r.provider.address).toBe(providers.sameAsBigButSmall.address)
  })

  it('respects GPU count, model and VRAM', () => {
    const { providers, spec } = setup()
    const gpuJob = spec({ resources: { gpu: { count: 2, models: ['A100'], minVramMb: 40_000 } } })
    const r = matchJob(gpuJob, [providers.cheapSmall, providers.big, providers.gpu4090])
    expect(r.ok && r.provider.address).toBe(providers.big.address)
  })

  it('explains a job that fits nowhere: counts per constraint and the nearest offers', () => {
    const { providers, spec } = setup()
    const r = matchJob(spec({ maxPricePerHour: 1, resources: { memoryMb: 64_000 } }), [providers.cheapSmall, providers.pricey])
    expect(r.ok).toBe(false)
    if (r.ok) return
    expect(r.excluded.price).toBe(2)
    expect(r.excluded.memory).toBe(2)
    expect(r.nearest).toHaveLength(2)
    expect(explainNoMatch(r)).toMatch(/none of 2 providers fits/)
    const empty = matchJob(spec({}), [])
    expect(!empty.ok && explainNoMatch(empty)).toMatch(/no provider is online/)
  })

  it('skips excluded, busy and unavailable providers', () => {
    const { providers, spec } = setup()
    const busy = { ...providers.cheapSmall, activeJobs: 1 }
    const off = { ...providers.pricey, advert: { ...providers.pricey.advert, available: false } }
    const r = matchJob(spec({}), [busy, off, providers.big], { exclude: [providers.big.address] })
    expect(r.ok).toBe(false)
    if (!r.ok) expect(r.excluded).toMatchObject({ busy: 1, unavailable: 1, excluded: 1 })
  })
})

function setup() {
  const provider = (price: number, cpu: number, memoryMb: number, gpus: { model: string; vramMb: number }[] = []): ProviderCandidate => {
    const address = Identity.generate().address as Address
    const advert: CapacityAdvert = {
      peerId: 'x', addrs: [], seq: 1, region: 'eu', version: '0.1.0', available: true, pricePerHour: price,
      hardware: { cpuCores: cpu, memoryMb, diskMb: 100_000, gpus: gpus.map((g, index) => ({ index, ...g })) },
      free: { cpu, memoryMb, gpus: gpus.length },
    }
    return { address, advert, activeJobs: 0 }
  }
  const providers = {
    cheapSmall: provider(100_000, 2, 4096),
    pricey: provider(900_000, 2, 4096),
    big: provider(500_000, 64, 256_000, [{ model: 'NVIDIA A100-SXM4-80GB', vramMb: 81_920 }, { model: 'NVIDIA A100-SXM4-80GB', vramMb: 81_920 }]),
    sameAsBigButSmall: provider(500_000, 4, 8192),
    gpu4090: provider(200_000, 16, 64_000, [{ model: 'NVIDIA GeForce RTX 4090', vramMb: 24_564 }, { model: 'NVIDIA GeForce RTX 4090', vramMb: 24_564 }]),
  }
  const spec = (over: Record<string, unknown>) => JobSpec.parse({ image: 'kiln/matmul:1', maxPricePerHour: 1_000_000, ...over })
  return { providers, spec }
}
