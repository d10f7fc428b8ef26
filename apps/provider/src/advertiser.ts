import type { MeshNode } from '@kiln/mesh'
import { MAX_ADVERT_CACHED_INPUTS, type Address, type CapacityAdvert, type Hardware } from '@kiln/protocol'
import type { Availability } from './availability.ts'
import { advertView } from './control-views.ts'
import type { Logger } from './log.ts'

export interface AdvertiserInit {
  mesh: Pick<MeshNode, 'peerId' | 'multiaddrs' | 'publishAdvert'>
  log: Logger
  hardware: Hardware
  region: string
  version: string
  operator?: Address
  /** Default 10 s. */
  intervalMs?: number
  availability(): Availability
  price(): number
  /** The egress network is in place: jobs that ask for network access are taken. */
  networkJobs(): boolean
  /**
   * The largest bond it can post now, when the wallet was read: its stablecoin. Bonds already
   * posted have left the wallet, and it runs one lease at a time, so nothing else holds a share.
   */
  maxBond(): number | undefined
  /** Input digests held in the local cache, most recently used first (bounded). */
  cachedInputs?(): string[]
}

/**
 * The capacity advert: what it says (all free or nothing free, with the reason), and its
 * gossip: at once on `publish()`, and on a timer that starts fast while the mesh forms.
 */
export function createAdvertiser(init: AdvertiserInit) {
  const { mesh, hardware } = init
  let seq = Date.now()
  let last: CapacityAdvert | undefined
  let publishedAt = 0
  let timer: NodeJS.Timeout | undefined

  const next = (): CapacityAdvert => {
    const a = init.availability()
    const maxBond = init.maxBond()
    return {
      peerId: mesh.peerId,
      addrs: mesh.multiaddrs(),
      seq: ++seq,
      hardware,
      free: a.available
        ? { cpu: hardware.cpuCores, memoryMb: hardware.memoryMb, gpus: hardware.gpus.length }
        : { cpu: 0, memoryMb: 0, gpus: 0 },
      pricePerHour: init.price(),
      region: init.region,
      version: init.version,
      available: a.available,
      ...(a.reason ? { reason: a.reason } : {}),
      ...(init.operator ? { operator: init.operator } : {}),
      ...(init.networkJobs() ? { network: true } : {}),
      ...(maxBond !== undefined ? { maxBond } : {}),
      ...(init.cachedInputs?.().length
        ? { cache: { images: [], inputs: init.cachedInputs().slice(0, MAX_ADVERT_CACHED_INPUTS) } }
        : {}),
    }
  }

  const publish = async (): Promise<void> => {
    last = next()
    publishedAt = Date.now()
    await mesh.publishAdvert(last).catch((e: unknown) => init.log.warn({ err: String(e) }, 'advert not published'))
  }

  return {
    next,
    publish,
    /** Early adverts can be lost while the gossip mesh forms, so start fast and back off: 0.5, 1, 2, 4, 8 s, then every interval. */
    async start(): Promise<void> {
      let delay = 500
      const every = init.intervalMs ?? 10_000
      const loop = async () => {
        await publish()
        timer = setTimeout(() => void loop(), delay)
        timer.unref()
        delay = Math.min(delay * 2, every)
      }
      await loop()
    },
    stop(): void {
      clearTimeout(timer)
    },
    view: () => advertView(last, publishedAt),
  }
}

export type Advertiser = ReturnType<typeof createAdvertiser>
