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
  type Logger,
  type MoneyFormat,
  type NonceCache,
  type TokenUnit,
} from '@kiln/protocol'
import type { Job, JobStore, LifecycleQueues, MatchingEngine } from '@kiln/scheduler'
import type { ArtifactStore } from '@kiln/artifacts'
import { placementAttempts, type VerificationDefaults } from '@kiln/verifier'
import type { Inventory } from './inventory.ts'

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

/** Everything the coordinator's parts share; built once by the app in one place. */
export interface CoordinatorContext {
  /** Reputation score (0..1) per provider, from signed receipts; 0.5 for the unknown. */
  reputation: Map<string, number>
  /** The indexed matching engine, fed by adverts. */
  engine: MatchingEngine
  db: Db
  arbiter: Identity
  mint: Address
  connection: Connection
  store: JobStore
  queues: LifecycleQueues
  mesh: MeshNode
  escrow: Escrow
  artifacts: ArtifactStore
  inventory: Inventory
  nonces: NonceCache
  log: Logger
  config: CoordinatorConfig
  /** Jobs that fit no provider right now, with the reason, for the API to show. */
  waiting: Map<string, string>
  /** Jobs whose run this process is following right now. */
  active: Set<string>
  placement: PlacementState
  /**
   * dispatch.ts's placementPass, handed in by coordinator.ts: the steps after a run (verify)
   * queue work again without importing dispatch, which would close an import cycle
   * (dispatch → lease → verify → dispatch).
   */
  placementPass: () => Promise<void>
}

export interface PlacementState {
  running: boolean
  again: boolean
  /** 1-based position of each queued job in the fair order, as of the last pass. */
  positions: Map<string, number>
  /** Moving average of how long a run holds a provider, for wait estimates. */
  avgRunMs: number
  /** Job → provider reservations held in the matching engine. */
  reserved: Map<string, string>
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
