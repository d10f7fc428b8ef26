import { checkLock } from '@kiln/escrow'
import { maxLeaseCost, type Address } from '@kiln/protocol'
import { explainNoMatch, matchJob, type TaskOutcome } from '@kiln/scheduler'
import { runLease } from './lease.ts'
import { runDeadline, vaultKey, type CoordinatorContext } from './types.ts'

/** Places a queued job on a provider and prepares its vault; the client then locks funds. */
export async function dispatch(ctx: CoordinatorContext, jobId: string): Promise<TaskOutcome> {
  const job = await ctx.store.get(jobId)
  if (!job || job.state !== 'queued') return { done: true }
  const result = matchJob(job.spec, ctx.inventory.candidates(), { exclude: job.excluded as Address[] })
  if (!result.ok) {
    const why = explainNoMatch(result)
    if (ctx.waiting.get(jobId) !== why) ctx.log.info({ jobId, excluded: result.excluded }, why)
    ctx.waiting.set(jobId, why)
    return { retryInMs: ctx.config.rematchMs }
  }
  ctx.waiting.delete(jobId)
  const provider = result.provider.address
  // Claim before the first await: concurrent dispatches in this process must see it busy.
  ctx.inventory.claim(provider, jobId)
  const attempt = job.attempt + 1
  const lockAmount = maxLeaseCost(result.pricePerHour, job.spec.timeoutSec)
  let matched
  try {
    const { vault, multisig } = await ctx.escrow.ensureVault({ jobId: vaultKey(jobId, attempt), client: job.client as Address, provider })
    matched = await ctx.store.transition(jobId, ['queued'], 'matched', `placed on ${provider}`, {
      provider, attempt, pricePerHour: result.pricePerHour, lockAmount, vault, multisig,
      lockDeadline: Date.now() + ctx.config.lockWindowMs,
    }, { score: result.score, pricePerHour: result.pricePerHour })
  } finally {
    if (!matched) ctx.inventory.release(provider, jobId)
  }
  if (!matched) return { done: true }
  await ctx.queues.enqueue('lock-timeout', jobId, { delayMs: ctx.config.lockWindowMs, key: String(attempt) })
  return { done: true }
}

/** The lock window closed: keep the job if the funds arrived anyway, else put it back in the queue. */
export async function lockTimeout(ctx: CoordinatorContext, jobId: string): Promise<TaskOutcome> {
  const job = await ctx.store.get(jobId)
  if (!job || job.state !== 'matched' || !job.vault || !job.provider) return { done: true }
  if (job.lockDeadline && job.lockDeadline > Date.now()) return { retryInMs: job.lockDeadline - Date.now() }
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
  ctx.inventory.release(job.provider as Address, jobId)
  if (back) await ctx.queues.enqueue('dispatch', jobId, { key: `p${job.attempt}` })
  return { done: true }
}
