import { providers, pruneNonces } from '@kiln/db'
import { NonceCache } from '@kiln/protocol'
import { createJobStore, createMatchingEngine } from '@kiln/scheduler'
import { dispatch, lockTimeout, placementPass } from './dispatch.ts'
import { Inventory } from './inventory.ts'
import { loadReputations } from './reputation.ts'
import { resync } from './service.ts'
import { reconcile } from './reconcile.ts'
import { settle } from './settle.ts'
import type { CoordinatorContext } from './types.ts'

export type CoordinatorInit = Omit<
  CoordinatorContext,
  'store' | 'inventory' | 'nonces' | 'waiting' | 'active' | 'placement' | 'engine' | 'reputation' | 'placementPass'
>

export interface Coordinator {
  ctx: CoordinatorContext
  start(): Promise<void>
  stop(): Promise<void>
}

/**
 * The marketplace's brain: keeps the live inventory from signed adverts and drives every
 * job's lifecycle through the queues. Scale-out is more of these on the same Redis.
 */
export function createCoordinator(init: CoordinatorInit): Coordinator {
  const ctx: CoordinatorContext = {
    ...init,
    store: createJobStore(init.db),
    inventory: new Inventory(),
    nonces: new NonceCache(),
    waiting: new Map(),
    active: new Set(),
    placement: { running: false, again: false, positions: new Map(), avgRunMs: 60_000, reserved: new Map() },
    engine: createMatchingEngine({ maxActiveJobs: 1, minReputation: init.config.minReputation ?? 0 }),
    reputation: new Map(),
    placementPass: () => placementPass(ctx),
  }
  const offs: (() => void)[] = []
  let pruneTimer: NodeJS.Timeout | undefined
  let reconcileTimer: NodeJS.Timeout | undefined
  let placeTimer: NodeJS.Timeout | undefined

  return {
    ctx,
    async start() {
      await loadReputations(ctx)
      offs.push(
        ctx.mesh.onAdvert(({ advert, signer, expiresAt, receivedAt }) => {
          const before = ctx.inventory.get(signer)
          if (!ctx.inventory.upsert(signer, advert, expiresAt, receivedAt)) return
          ctx.engine.upsert({ address: signer, advert, reputation: ctx.reputation.get(signer) ?? 0.5 })
          // A provider that came online or became free may take a queued job.
          if (advert.available && !before?.available)
            void placementPass(ctx).catch((err: unknown) => ctx.log.warn({ err: String(err) }, 'placement failed'))
          void ctx.db
            .insert(providers)
            .values({ address: signer, advert, firstSeen: receivedAt, lastSeen: receivedAt, expiresAt })
            .onConflictDoUpdate({ target: providers.address, set: { advert, lastSeen: receivedAt, expiresAt } })
            .catch((err: unknown) => ctx.log.warn({ err: String(err) }, 'could not record provider'))
        }),
      )
      offs.push(
        ctx.mesh.onPeerDisconnect((address) => {
          if (ctx.inventory.get(address)) ctx.log.info({ provider: address }, 'provider disconnected')
          ctx.inventory.remove(address)
          ctx.engine.remove(address)
        }),
      )
      pruneTimer = setInterval(() => {
        for (const gone of ctx.inventory.prune()) {
          ctx.engine.remove(gone)
          ctx.log.info({ provider: gone }, 'provider advert expired')
        }
      }, 1000)
      pruneTimer.unref()
      placeTimer = setInterval(
        () => void placementPass(ctx).catch((err: unknown) => ctx.log.warn({ err: String(err) }, 'placement failed')),
        ctx.config.rematchMs,
      )
      placeTimer.unref()
      let ticks = 0
      reconcileTimer = setInterval(() => {
        const resyncNow = ++ticks % 3 === 0
        // Once a minute: a used nonce is kept only while its envelope could still be replayed.
        if (ticks % 12 === 0)
          void pruneNonces(ctx.db).catch((err: unknown) =>
            ctx.log.warn({ err: String(err) }, 'could not prune used nonces'),
          )
        void reconcile(ctx)
          .then(() => (resyncNow ? resync(ctx) : undefined))
          .catch((err: unknown) => ctx.log.warn({ err: String(err) }, 'reconcile failed'))
      }, 5000)
      reconcileTimer.unref()
      await ctx.queues.start({
        dispatch: (id) => dispatch(ctx, id),
        'lock-timeout': (id) => lockTimeout(ctx, id),
        settle: (id) => settle(ctx, id),
      })
      await resync(ctx)
    },
    async stop() {
      for (const off of offs.splice(0)) off()
      clearInterval(pruneTimer)
      clearInterval(reconcileTimer)
      clearInterval(placeTimer)
      await ctx.queues.stop()
    },
  }
}
