import { providers, pruneNonces } from '@kiln/db'
import { NonceCache } from '@kiln/protocol'
import { createJobStore } from '@kiln/scheduler'
import { FollowedRuns, PlacementBook, SealedSecrets } from './book.ts'
import { dispatch, lockTimeout, placementPass } from './dispatch.ts'
import { ProviderDirectory } from './inventory.ts'
import { finishRun, runLease } from './lease.ts'
import { failRun } from './lease-outcome.ts'
import { reconcile } from './reconcile.ts'
import { resumeRun } from './resume.ts'
import { resync } from './service.ts'
import { settle } from './settle.ts'
import type { Collaborators, CoordinatorContext, Next } from './types.ts'
import { verifyFamily } from './verify.ts'

export type CoordinatorInit = Omit<Collaborators, 'store' | 'nonces'>

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
  const inventory = new ProviderDirectory({ db: init.db, minReputation: init.config.minReputation ?? 0 })
  const warn = (what: string) => (err: unknown) => init.log.warn({ err: String(err) }, what)
  // The one place the steps are wired to each other: each reaches the next only through this.
  const next: Next = {
    place: () => void placementPass(ctx).catch(warn('placement failed')),
    run: (job) => void runLease(ctx, job).catch(warn('run failed')),
    resume: (job) => resumeRun(ctx, job),
    finish: (job, receipt) => finishRun(ctx, job, receipt),
    fail: (job, error) => failRun(ctx, job, error),
    verify: (rootId) => verifyFamily(ctx, rootId),
    settle: (run) => ctx.queues.enqueue('settle', run.id, { key: `a${run.attempt}` }),
  }
  const ctx: CoordinatorContext = {
    ...init,
    store: createJobStore(init.db),
    nonces: new NonceCache(),
    inventory,
    book: new PlacementBook(inventory),
    following: new FollowedRuns(),
    sealed: new SealedSecrets(),
    next,
    reputation: inventory.reputations,
  }
  const offs: (() => void)[] = []
  let pruneTimer: NodeJS.Timeout | undefined
  let reconcileTimer: NodeJS.Timeout | undefined
  let placeTimer: NodeJS.Timeout | undefined

  return {
    ctx,
    async start() {
      await inventory.loadReputations()
      offs.push(
        ctx.mesh.onAdvert(({ advert, signer, expiresAt, receivedAt }) => {
          const heard = inventory.heard(signer, advert, expiresAt, receivedAt)
          if (heard === 'stale') return
          // A provider that came online or became free may take a queued job.
          if (heard === 'freed') next.place()
          void ctx.db
            .insert(providers)
            .values({ address: signer, advert, firstSeen: receivedAt, lastSeen: receivedAt, expiresAt })
            .onConflictDoUpdate({ target: providers.address, set: { advert, lastSeen: receivedAt, expiresAt } })
            .catch(warn('could not record provider'))
        }),
      )
      offs.push(
        ctx.mesh.onPeerDisconnect((address) => {
          if (inventory.left(address)) ctx.log.info({ provider: address }, 'provider disconnected')
        }),
      )
      pruneTimer = setInterval(() => {
        for (const gone of inventory.prune()) ctx.log.info({ provider: gone }, 'provider advert expired')
      }, 1000)
      pruneTimer.unref()
      placeTimer = setInterval(() => next.place(), ctx.config.rematchMs)
      placeTimer.unref()
      let ticks = 0
      reconcileTimer = setInterval(() => {
        const resyncNow = ++ticks % 3 === 0
        // Once a minute: a used nonce is kept only while its envelope could still be replayed.
        if (ticks % 12 === 0) void pruneNonces(ctx.db).catch(warn('could not prune used nonces'))
        void reconcile(ctx)
          .then(() => (resyncNow ? resync(ctx) : undefined))
          .catch(warn('reconcile failed'))
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
