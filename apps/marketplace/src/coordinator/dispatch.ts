import { checkLock, multisigAddress, vaultAddress } from '@kiln/escrow'
import { maxLeaseCost, type Address } from '@kiln/protocol'
import { explainNoMatch, matchJob, type TaskOutcome } from '@kiln/scheduler'
import { runLease } from './lease.ts'
import { runDeadline, vaultKey, type CoordinatorContext } from './types.ts'

/** One job at a time per provider: the sandbox runs one lease at once. */
const MAX_ACTIVE = 1

/** Places a queued job on a provider and prepares its vault; the client then locks funds. */
export async function dispatch(ctx: CoordinatorContext, jobId: string): Promise<TaskOutcome> {
  const job = await ctx.store.get(jobId)
  if (!job || job.state !== 'queued') return { done: true }
  // Load as this process knows it and as the shared database knows it (other coordinators).
  const busy = await ctx.store.activeByProvider()
  const candidates = ctx.inventory.candidates().map((c) => ({ ...c, activeJobs: Math.max(c.activeJobs, busy.get(c.address) ?? 0) }))
  const result = matchJob(job.spec, candidates, { exclude: job.excluded as Address[], maxActiveJobs: MAX_ACTIVE })
  if (!result.ok) {
    const why = explainNoMatch(result)
    if (ctx.waiting.get(jobId) !== why) ctx.log.info({ jobId, excluded: result.excluded }, why)
    ctx.waiting.set(jobId, why)
    return { retryInMs: ctx.config.rematchMs }
  }
  ctx.waiting.delete(jobId)
  const provider = result.provider.address
  const client = job.client as Address
  const attempt = job.attempt + 1
  const key = vaultKey(jobId, attempt)
  // Claim before the first await, so concurrent dispatches in this process see the provider
  // busy until the placement is in the database, which every coordinator reads from then on.
  ctx.inventory.claim(provider, jobId)
  let placed
  try {
    placed = await ctx.store.place(jobId, provider, MAX_ACTIVE, `placed on ${provider}`, {
      attempt, pricePerHour: result.pricePerHour, lockAmount: maxLeaseCost(result.pricePerHour, job.spec.timeoutSec),
      vault: vaultAddress(ctx.arbiter.address, key), multisig: multisigAddress(ctx.arbiter.address, client, provider), lockDeadline: null,
    }, { score: result.score, pricePerHour: result.pricePerHour })
  } finally {
    ctx.inventory.release(provider, jobId)
  }
  if (placed === 'busy') return { retryInMs: 200 }
  if (placed === 'moved') return { done: true }
  try {
    await ctx.escrow.ensureVault({ jobId: key, client, provider })
  } catch (err) {
    // The vault could not be made: back to the queue; the next placement gets a fresh vault key.
    const back = await ctx.store.transition(jobId, ['matched'], 'queued', `escrow vault setup failed: ${(err as Error).message}`, { provider: null, vault: null, multisig: null, lockAmount: null, pricePerHour: null })
    if (back) await ctx.queues.enqueue('dispatch', jobId, { key: `p${attempt}`, delayMs: 1000 })
    return { done: true }
  }
  // The lock window opens only now that the vault exists; until then the client sees no lock.
  await ctx.store.update(jobId, { lockDeadline: Date.now() + ctx.config.lockWindowMs })
  await ctx.queues.enqueue('lock-timeout', jobId, { delayMs: ctx.config.lockWindowMs, key: String(attempt) })
  return { done: true }
}

/** The lock window closed: keep the job if the funds arrived anyway, else put it back in the queue. */
export async function lockTimeout(ctx: CoordinatorContext, jobId: string): Promise<TaskOutcome> {
  const job = await ctx.store.get(jobId)
  if (!job || job.state !== 'matched' || !job.vault || !job.provider) return { done: true }
  if (job.lockDeadline === null) return { retryInMs: 1000 }
  if (job.lockDeadline > Date.now()) return { retryInMs: job.lockDeadline - Date.now() }
  const lock = await checkLock(ctx.connection, {
    jobId: vaultKey(jobId, job.attempt), mint: ctx.mint, vault: job.vault as Address, client: job.client as Address, provider: job.provider as Address,
    arbiter: ctx.arbiter.address, amount: job.lockAmount ?? 0,
  })
  if (lock.ok) {
    const locked = await ctx.store.transition(jobId, ['matched'], 'locked', 'funds found in the vault at the lock deadline', { lockSignature: job.lockSignature, runDeadline: runDeadline(job.spec.timeoutSec) })
    if (locked) void runLease(ctx, locked)
    return { done: true }
  }
  const back = await ctx.store.transition(jobId, ['matched'], 'queued', `client did not lock funds within ${ctx.config.lockWindowMs} ms (${lock.reason})`, {
    provider: null, vault: null, multisig: null, lockAmount: null, pricePerHour: null, lockDeadline: null,
  })
  if (back) await ctx.queues.enqueue('dispatch', jobId, { key: `p${job.attempt}` })
  return { done: true }
}
