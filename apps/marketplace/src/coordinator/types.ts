import type { Connection } from '@solana/web3.js'
import type { Db } from '@kiln/db'
import type { Escrow, SettlementStatus } from '@kiln/escrow'
import type { MeshNode } from '@kiln/mesh'
import { createHash } from 'node:crypto'
import {
  escrowIdFor,
  moneyFormat,
  tokenUnitFor,
  type Address,
  type Identity,
  type KilnError,
  type Logger,
  type MoneyFormat,
  type NonceCache,
  type ResultReceipt,
  type TokenUnit,
} from '@kiln/protocol'
import type { Job, JobStore, LifecycleQueues } from '@kiln/scheduler'
import type { ArtifactStore } from '@kiln/artifacts'
import { placementAttempts, type VerificationDefaults } from '@kiln/verifier'
import type { FollowedRuns, PlacementBook, SealedSecrets } from './book.ts'
import type { ProviderDirectory } from './inventory.ts'

export type { Logger } from '@kiln/protocol'

export interface CoordinatorConfig {
  /** How long a client has to lock funds after its job is matched. */
  lockWindowMs: number
  /** How long a provider may stay silent during a run before the job is given up on. */
  providerSilenceMs: number
  /** How often a job that fits no provider is tried again. */
  rematchMs: number
  /** The marketplace's cut of paid work, in basis points. */
  feeBps: number
  /** Default spot-check probability and bond, where a job's spec leaves them out. */
  verification: VerificationDefaults
  /** Keys the spot-check draws and the escrow ids; never leaves the marketplace. */
  verifySecret: Uint8Array
  /** How long a re-run or tie-break may wait for an independent provider before the job settles without it. */
  rerunWaitMs: number
  /**
   * Providers whose reputation is below this get no work (default 0: none barred). One fresh
   * catch divides a score by ten, so a floor of 0.15 bars a caught provider until the catch
   * has decayed (months), while a newcomer (0.5) or a provider with some failures still works.
   */
  minReputation?: number
  /**
   * Lock windows in a row a job may let close without its owner's lock before it stops being
   * placed (default 3): it stays queued, parked, until its owner comes back (`ownerReturned`).
   */
  parkAfterLapses?: number
  /** The unit amounts in messages are named with (default: the mint's, by tokenUnitFor). */
  token?: TokenUnit
}

/** How the coordinator's messages show amounts: in the marketplace's unit, as the clients do. */
export const moneyOf = (ctx: Pick<CoordinatorContext, 'config' | 'mint'>): MoneyFormat =>
  moneyFormat(ctx.config.token ?? tokenUnitFor(ctx.mint))

/** The parts the coordinator works with, made by the app (bin.ts) and shared by every step. */
export interface Collaborators {
  db: Db
  arbiter: Identity
  mint: Address
  connection: Connection
  store: JobStore
  queues: LifecycleQueues
  mesh: MeshNode
  escrow: Escrow
  artifacts: ArtifactStore
  nonces: NonceCache
  log: Logger
  config: CoordinatorConfig
  /**
   * Job inputs: who uploaded what (a spec names only its client's own uploads), and scratch
   * space on the artifact store's filesystem for files taken out of other jobs' outputs.
   */
  inputs?: { owns(client: Address, sha256: string): Promise<boolean>; tmpDir: string }
}

/**
 * How a step hands a job on to the next one: the only way steps reach each other. It is wired
 * once, in coordinator.ts, so the step files import no other step (and no import cycle can
 * form through them), and a step's test stubs it to see what the step asked for next.
 */
export interface Next {
  /** Queued work may fit now: run a placement pass soon (dispatch.ts). Never throws. */
  place(): void
  /** A run is locked: deliver its lease and follow it to its end (lease.ts), in the background. */
  run(job: Job): void
  /** Fetch the result of a run nobody here follows (resume.ts). */
  resume(job: Job): Promise<ResumeOutcome>
  /** A run delivered a checked receipt: it waits in `verifying` for its family (lease.ts). */
  finish(job: Job, receipt: ResultReceipt): Promise<void>
  /** A run ended without a usable receipt: refund it, and place it again where another provider may do better (lease-outcome.ts). */
  fail(job: Job, error: KilnError): Promise<void>
  /** Judge a job once every one of its runs is in (verify.ts). */
  verify(rootId: string): Promise<void>
  /** A run is `settling`: pay out its vault, on the durable queue (settle.ts). */
  settle(run: Pick<Job, 'id' | 'attempt'>): Promise<void>
}

/** What fetching a kept result came to (resume.ts). */
export type ResumeOutcome = 'finished' | 'running' | 'lost' | 'unreachable'

/** Everything the coordinator's parts share: the collaborators, the state's owners, and the hand-off port. */
export interface CoordinatorContext extends Collaborators {
  /** The providers: live adverts, the matching engine's records and reputation scores (inventory.ts). */
  inventory: ProviderDirectory
  /** Reservations, queue positions, waiting reasons and run lengths (book.ts). */
  book: PlacementBook
  /** Runs whose stream this process follows right now. */
  following: FollowedRuns
  /** Sealed secrets of locked runs, relayed in their lease. */
  sealed: SealedSecrets
  next: Next
  /**
   * The directory's scores, read-only; kept for the API's providers list (api/market.ts),
   * which may as well ask `inventory.reputationOf(address)`.
   */
  reputation: ReadonlyMap<string, number>
}

/**
 * The escrow id of a run's current placement: the job's public id (the one its lease names)
 * and a number drawn from the run and attempt under the marketplace secret, so that
 * neither the order of placements nor a second run of the same job can be read from it.
 */
export function escrowIdOf(
  ctx: Pick<CoordinatorContext, 'config'>,
  job: Pick<Job, 'id' | 'parentId' | 'attempt'>,
): string {
  const n = placementAttempts(job.id, ctx.config.verifySecret, job.attempt)[job.attempt - 1] ?? 0
  return escrowIdFor(job.parentId ?? job.id, n)
}

/** A run's vault as the chain has it (absent until the client's lock creates it; closed once settled). */
export function vaultStatus(
  ctx: Pick<CoordinatorContext, 'config' | 'escrow'>,
  job: Pick<Job, 'id' | 'parentId' | 'attempt' | 'client'>,
): Promise<SettlementStatus> {
  return ctx.escrow.settlementStatus({ jobId: escrowIdOf(ctx, job), client: job.client as Address })
}

/** A run's spot-check secret from the arbiter's key: the same in every coordinator of a marketplace. */
export function verificationSecret(arbiter: Identity): Uint8Array {
  return createHash('sha256').update('kiln/verification-secret/1').update(arbiter.exportSecretKey()).digest()
}

/** Time for a locked job to start, run to its timeout and report, after which it is given up on. */
export function runDeadline(timeoutSec: number, now = Date.now()): number {
  return now + (timeoutSec + 90) * 1000
}
