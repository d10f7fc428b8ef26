import type { LockCheck, VaultRef } from '@kiln/escrow'
import {
  DEFAULT_MAX_ENVELOPE_BYTES,
  MAX_SECRETS_ENVELOPE_BYTES,
  openSecrets,
  type Identity,
  gpuMismatch,
  gpuNeed,
  isEscrowIdOf,
  Kind,
  KilnError,
  Lease,
  open,
  type Address,
  type Hardware,
  type KilnErrorName,
  type NonceCache,
} from '@kiln/protocol'

/** What the provider knows when a lease arrives; plain data, so the rules are testable alone. */
export interface LeaseState {
  self: Address
  marketplace: Address
  mint: Address
  pricePerHour: number
  hardware: Hardware
  /** Why the owner (or the GPU watch) has paused us, when paused. */
  pausedReason?: string
  /** The job running now, if any: one lease at a time. */
  runningJobId?: string
  /** Why the Docker engine cannot be used, when it cannot. */
  dockerProblem?: string
  /** Why jobs that ask for network access are not taken, when they are not (by default). */
  noNetworkJobs?: string
  /** Crash recovery has not finished: the journal may still hold runs to square with Docker. */
  recovering?: boolean
  /** The vault of a lease for this job already accepted once, if any (a replay under a new nonce). */
  acceptedVault?: string
  now: number
}

export interface LeaseProblem {
  kind: KilnErrorName
  message: string
}

function gpuProblem(lease: Lease, hw: Hardware): string | undefined {
  const want = lease.spec.resources.gpu
  // The scheduler's own rule, so a provider does not refuse what it was matched for.
  if (gpuMismatch(gpuNeed(want), hw.gpus) === undefined) return undefined
  const have = hw.gpus.length ? hw.gpus.map((g) => `${g.model} (${g.vramMb} MiB)`).join(', ') : 'no GPU'
  return `the job asks for ${want.count} GPU(s)${want.models.length ? ` of ${want.models.join('/')}` : ''}${want.minVramMb ? ` with ${want.minVramMb} MiB VRAM` : ''}; this provider has ${have}`
}

/**
 * Every reason to refuse a lease that can be decided without the chain, first the ones that
 * say the lease is not for us, then the ones about our own state, then whether the job fits.
 * The signature is checked before (open()), the escrow after (checkLock): an empty list means
 * "check the vault".
 */
export function leaseProblems(lease: Lease, s: LeaseState): LeaseProblem[] {
  const out: LeaseProblem[] = []
  const refuse = (message: string, kind: KilnErrorName = 'LEASE_REFUSED') => out.push({ kind, message })
  if (lease.provider !== s.self) refuse('the lease names another provider')
  if (lease.arbiter !== s.marketplace) refuse("the lease names another arbiter than this provider's marketplace")
  if (lease.mint !== s.mint) refuse(`the lease pays in mint ${lease.mint}, not ${s.mint}`)
  if (!isEscrowIdOf(lease.escrowId, lease.jobId)) refuse('the escrow id does not belong to this job')
  if (lease.startBy < s.now) refuse('the lease lapsed before it arrived (its startBy has passed)')
  if (s.acceptedVault !== undefined && s.acceptedVault === lease.vault) refuse('this lease was already accepted once')
  out.push(...stateProblems(s))
  const r = lease.spec.resources
  if (r.cpu > s.hardware.cpuCores) refuse(`the job asks for ${r.cpu} CPUs; this provider has ${s.hardware.cpuCores}`)
  if (r.memoryMb > s.hardware.memoryMb)
    refuse(`the job asks for ${r.memoryMb} MiB of memory; this provider has ${s.hardware.memoryMb}`)
  const gpu = gpuProblem(lease, s.hardware)
  if (gpu) refuse(gpu)
  if (lease.spec.network && s.noNetworkJobs)
    refuse(`the job asks for network access, which this provider does not take (${s.noNetworkJobs})`)
  if (lease.pricePerHour < s.pricePerHour)
    refuse(`the lease pays ${lease.pricePerHour}/h, below this provider's price ${s.pricePerHour}/h`)
  return out
}

/**
 * The rules about our own state alone: paused, busy, the engine, recovery. They are checked
 * again after the vault (which takes a while), when the state may have changed.
 */
export function stateProblems(s: Omit<LeaseState, 'now'>): LeaseProblem[] {
  const out: LeaseProblem[] = []
  const refuse = (message: string, kind: KilnErrorName = 'LEASE_REFUSED') => out.push({ kind, message })
  if (s.pausedReason) refuse(`this provider is paused (${s.pausedReason})`)
  if (s.runningJobId !== undefined) refuse(`already running a job (${s.runningJobId})`)
  if (s.dockerProblem) refuse(`Docker engine unavailable: ${s.dockerProblem}`, 'DOCKER_UNAVAILABLE')
  else if (s.recovering) refuse('this provider is still recovering jobs from before a restart')
  return out
}

export type LockChecker = (ref: VaultRef & { amount: number }) => Promise<LockCheck>

export interface AcceptInit {
  marketplace: Address
  nonces: NonceCache
  state(lease: Lease): LeaseState
  /** Reads the vault on chain (checkLock from @kiln/escrow); injected so tests can make it fail. */
  checkLock: LockChecker
  /**
   * Takes the job slot for an accepted lease. Called in the same turn as the last check, so
   * no other lease can pass the checks in between.
   */
  claim?(lease: Lease): void
  /** This provider's key: the lease's sealed secrets must open with it (checked before the vault). */
  identity?: Identity
}

function refuseOn(problems: LeaseProblem[], lease: Lease): void {
  const first = problems[0]
  if (first) throw new KilnError(first.kind, first.message, { jobId: lease.jobId, problems })
}

/**
 * Admission, the one place the lease rules are checked. Opens a lease envelope and decides:
 * the marketplace's signature (open() refuses any other signer, an expired or replayed
 * envelope), then leaseProblems, then the vault on chain, then stateProblems once more, and
 * claims the slot. Throws the first reason as a KilnError; nothing runs unless this returns.
 */
export async function acceptLease(raw: unknown, init: AcceptInit): Promise<Lease> {
  const { payload: lease } = open(raw, {
    kind: Kind.lease,
    schema: Lease,
    signer: init.marketplace,
    nonces: init.nonces,
    // A lease may carry the client's sealed secrets beside the spec.
    maxBytes: DEFAULT_MAX_ENVELOPE_BYTES + MAX_SECRETS_ENVELOPE_BYTES,
  })
  refuseOn(leaseProblems(lease, init.state(lease)), lease)
  // Sealed to another provider or lease, tampered with, or missing names: refused before any bond is posted.
  if (init.identity && (lease.spec.secrets.length > 0 || lease.spec.privateImage))
    openSecrets(init.identity, lease.secrets, {
      client: lease.client,
      jobId: lease.jobId,
      escrowId: lease.escrowId,
      names: lease.spec.secrets,
      privateImage: lease.spec.privateImage,
    })
  const lock = await init.checkLock({
    jobId: lease.escrowId,
    mint: lease.mint,
    vault: lease.vault,
    client: lease.client,
    provider: lease.provider,
    arbiter: lease.arbiter,
    amount: lease.lockAmount,
  })
  if (!lock.ok)
    throw new KilnError('ESCROW_NOT_FUNDED', `escrow not funded on chain: ${lock.reason}`, {
      jobId: lease.jobId,
      vault: lease.vault,
    })
  // The vault check took a while: the owner may have paused, or another lease got in first.
  refuseOn(stateProblems(init.state(lease)), lease)
  init.claim?.(lease)
  return lease
}
