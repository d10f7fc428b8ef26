import { describe, expect, it } from 'vitest'
import { Identity, type Address, type CapacityAdvert } from '@kiln/protocol'
import type { Job } from '@kiln/scheduler'
import { excludedFor } from '../src/coordinator/dispatch.ts'
import { Inventory } from '../src/coordinator/inventory.ts'
import type { CoordinatorContext } from '../src/coordinator/types.ts'

const addr = () => Identity.generate().address
const advert = (operator?: Address): CapacityAdvert => ({
  peerId: 'p',
  addrs: [],
  seq: 1,
  hardware: { cpuCores: 2, memoryMb: 1024, diskMb: 0, gpus: [] },
  free: { cpu: 2, memoryMb: 1024, gpus: 0 },
  pricePerHour: 1,
  region: 'local',
  version: '0',
  available: true,
  ...(operator ? { operator } : {}),
})

describe('independent runs', () => {
  it("exclude the providers of the job's other runs and every provider of their operator, plus the run's own failures", async () => {
    const [a, b, c, d, failed] = [addr(), addr(), addr(), addr(), addr()]
    const op = addr()
    const inventory = new Inventory()
    inventory.upsert(a, advert(op), Date.now() + 60_000)
    inventory.upsert(b, advert(op), Date.now() + 60_000) // same operator as a
    inventory.upsert(c, advert(), Date.now() + 60_000)
    inventory.upsert(d, advert(addr()), Date.now() + 60_000)
    const root = { id: 'job_root', parentId: null, spotCheck: true, provider: a, excluded: [] } as unknown as Job
    const replica = {
      id: 'job_rootr1',
      parentId: 'job_root',
      spotCheck: false,
      provider: null,
      excluded: [failed],
    } as unknown as Job
    const ctx = { inventory, store: { family: async () => [root, replica] } } as unknown as CoordinatorContext
    expect(new Set(await excludedFor(ctx, replica))).toEqual(new Set([a, b, failed]))
    // A job nobody re-runs is only kept from the providers that failed it.
    const plain = { id: 'job_x', parentId: null, spotCheck: false, excluded: [failed] } as unknown as Job
    expect(await excludedFor(ctx, plain)).toEqual([failed])
  })
})
