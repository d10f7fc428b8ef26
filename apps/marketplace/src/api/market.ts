import type { Marketplace, NetworkInfo } from '@kiln/api'
import {
  cancelJob,
  confirmLock,
  cosignRefund,
  jobRuns,
  ownedJob,
  ownerReturned,
  publicJob,
  publicView,
  submitJob,
  viewOf,
  type CoordinatorContext,
} from '../coordinator/index.ts'

/** What the app builds once and every request shares. */
export interface ApiContext {
  coordinator: CoordinatorContext
  info: NetworkInfo
}

/** The API's Marketplace over this app's coordinator: its database rows become the declared views here. */
export function marketplaceOf({ coordinator: c, info }: ApiContext): Marketplace {
  return {
    info: () => info,
    providers: () =>
      c.inventory.list().map((p) => {
        const reputation = c.inventory.reputationOf(p.address)
        return {
          address: p.address,
          region: p.advert.region,
          pricePerHour: p.advert.pricePerHour,
          available: p.advert.available,
          reason: p.advert.reason ?? null,
          hardware: p.advert.hardware,
          free: p.advert.free,
          version: p.advert.version,
          lastSeen: p.lastSeen,
          expiresAt: p.expiresAt,
          reputation,
          network: p.advert.network === true,
          suspended: reputation < (c.config.minReputation ?? 0),
        }
      }),
    submit: (envelope) => submitJob(c, envelope),
    lock: (envelope) => confirmLock(c, envelope),
    cancel: (envelope) => cancelJob(c, envelope),
    cosign: (envelope) => cosignRefund(c, envelope),
    runs: (envelope) => jobRuns(c, envelope),
    async ownedJob({ jobId, reader, watch }) {
      let job = await ownedJob(c, jobId, reader)
      if (watch && (await ownerReturned(c, job.id))) job = await c.store.mustGet(job.id)
      const events = await c.store.events(job.id)
      return { ...viewOf(c, job), events: events.map((e) => ({ from: e.from, to: e.to, reason: e.reason, at: e.at })) }
    },
    async logs({ jobId, reader, after, limit }) {
      const rows = await c.store.logs((await ownedJob(c, jobId, reader)).id, after, limit)
      return rows.map((r) => ({ seq: r.seq, stream: r.stream as 'stdout' | 'stderr', text: r.text, at: r.at }))
    },
    async publicJob(jobId) {
      const job = await publicJob(c, jobId)
      const events = await c.store.events(job.id)
      // Times only: a transition's reason may quote the job's own output.
      return { ...publicView(job), events: events.map((e) => ({ from: e.from, to: e.to, at: e.at })) }
    },
    list: async (q) => (await c.store.list(q)).map(publicView),
  }
}
