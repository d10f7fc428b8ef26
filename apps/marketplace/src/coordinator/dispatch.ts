import { checkLock, multisigAddress, vaultAddress } from '@kiln/escrow'
import { maxLeaseCost, type Address } from '@kiln/protocol'
import { explainPlacement, explainUnplaced, fairOrder, type Job, type TaskOutcome } from '@kiln/scheduler'
import { resolveVerification } from '@kiln/verifier'
import { afterLapse, parkedReason } from './park.ts'
import { escrowIdOf, moneyOf, runDeadline, type CoordinatorContext } from './types.ts'

/** One job at a time per provider: the sandbox runs one lease at once. */
const MAX_ACTIVE = 1

/**
 * A placement pass: every queued job, in fair order (priority, then clients taking turns),
 * gets the best provider that fits, until no provider is free. Runs when capacity may have
 * changed (a submit, an advert, a job ending) and every second; passes never overlap in a
 * process, and several coordinators are safe because placement is atomic per provider.
 */
export async function placementPass(ctx: CoordinatorContext): Promise<void> {
  await ctx.book.pass(() => passOnce(ctx))
}

async function passOnce(ctx: CoordinatorContext): Promise<void> {
  const book = ctx.book
  // The engine's reservations mirror the placements in the database (every coordinator's).
  book.mirror(await ctx.store.active())
  const queued = await ctx.store.queued()
  // A parked job is not placed until its owner is back; it says so, whatever else is free.
  for (const j of queued) if (j.parkedAt !== null) book.wait(j.id, parkedReason(j))
  const order = fairOrder(queued.filter((j) => j.parkedAt === null))
  book.ordered(order.map((j) => j.id))
  let free = ctx.inventory.list().some((p) => p.advert.available)
  for (const [i, head] of order.entries()) {
    // With nothing free, only the head of the queue gets a fresh explanation.
    if (!free && i >= 20) break
    const job = await ctx.store.get(head.id)
    if (!job || job.state !== 'queued' || job.parkedAt !== null) continue
    if (job.role === 'replica' && !(await ownRunDelivered(ctx, job))) continue
    const floor = job.spec.minReputation !== undefined ? { minReputation: job.spec.minReputation } : {}
    const result = book.match(
      { id: job.id, spec: job.spec, ...floor, bondAt: (price) => leaseTerms(ctx, job, price).bond },
      { exclude: await excludedFor(ctx, job) },
    )
    if (!result.ok) {
      const why = explainUnplaced(result, moneyOf(ctx).rate)
      if (book.wait(job.id, why)) ctx.log.info({ jobId: job.id, excluded: result.excluded }, why)
      if (result.total === 0) free = false
      continue
    }
    book.unwait(job.id)
    const provider = result.provider.address
    const outcome = await placeOn(ctx, job, provider, result.pricePerHour, result.score, explainPlacement(result, job))
    if (outcome === 'placed') book.placed(job.id, provider)
    else book.unplaced(job.id)
  }
}

/**
 * A spot-check re-run is placed only once the job's own run has delivered its signed result:
 * by then that provider can no longer change it, so it gains nothing from learning (from the
 * client's second lock on chain, or the job's page) that the job is being checked.
 */
async function ownRunDelivered(ctx: CoordinatorContext, run: Job): Promise<boolean> {
  const root = run.parentId ? await ctx.store.get(run.parentId) : undefined
  if (!root) return true
  if (root.state === 'verifying') return true
  if (['queued', 'matched', 'locked', 'running'].includes(root.state) || root.settleAction === 'refund_requeue') {
    ctx.book.wait(run.id, "waits for the job's own run to deliver its result")
    return false
  }
  return true
}

/**
 * Providers this run must not go to: those that failed it, and for a job's independent runs
 * (spot-check re-run, tie-break) every provider holding another run of the same job, and
 * every provider its operator runs (a provider without a declared operator is its own).
 */
export async function excludedFor(ctx: CoordinatorContext, job: Job): Promise<Address[]> {
  const out = new Set(job.excluded)
  if (job.parentId || job.spotCheck) {
    const others = (await ctx.store.family(job.parentId ?? job.id))
      .filter((r) => r.id !== job.id && r.provider)
      .map((r) => r.provider as Address)
    // Independent means another key and another operator: one operator's machines do not check each other.
    const operators = new Set(others.map((a) => ctx.inventory.get(a)?.operator ?? a))
    for (const a of others) out.add(a)
    for (const p of ctx.inventory.list()) if (operators.has(p.advert.operator ?? p.address)) out.add(p.address)
  }
  return [...out] as Address[]
}

/** The lock and the bond of a run of `job` at a provider's price: the engine matches only providers that can post this bond. */
function leaseTerms(ctx: CoordinatorContext, job: Job, pricePerHour: number): { lockAmount: number; bond: number } {
  const lockAmount = maxLeaseCost(pricePerHour, job.spec.timeoutSec)
  return { lockAmount, bond: resolveVerification(job.spec.verification, lockAmount, ctx.config.verification).bond }
}

/**
 * Places one job: atomically in the database, then the pair's multisig on chain (once per
 * client and provider). The vault is only named here: the client's lock creates it, so a
 * placement nobody locks leaves nothing on chain and costs the arbiter no rent.
 */
async function placeOn(
  ctx: CoordinatorContext,
  job: Job,
  provider: Address,
  pricePerHour: number,
  score: number,
  why: string,
): Promise<'placed' | 'busy' | 'moved'> {
  const client = job.client as Address
  const attempt = job.attempt + 1
  const key = escrowIdOf(ctx, { ...job, attempt })
  const { lockAmount, bond } = leaseTerms(ctx, job, pricePerHour)
  const placed = await ctx.store.place(
    job.id,
    provider,
    MAX_ACTIVE,
    why,
    {
      attempt,
      pricePerHour,
      lockAmount,
      bond,
      feeBps: ctx.config.feeBps,
      vault: vaultAddress(ctx.arbiter.address, client, key),
      multisig: multisigAddress(ctx.arbiter.address, client, provider),
      lockDeadline: null,
    },
    { score, pricePerHour },
  )
  if (placed !== 'placed') return placed
  try {
    await ctx.escrow.prepareVault({ jobId: key, client, provider })
  } catch (err) {
    // The multisig could not be made: back to the queue; the next placement gets a fresh vault key.
    await ctx.store.transition(job.id, ['matched'], 'queued', `escrow setup failed: ${(err as Error).message}`, {
      provider: null,
      vault: null,
      multisig: null,
      lockAmount: null,
      pricePerHour: null,
    })
    return 'moved'
  }
  // The lock window opens only now that the multisig exists; until then the client sees no lock.
  await ctx.store.update(job.id, { lockDeadline: Date.now() + ctx.config.lockWindowMs })
  await ctx.queues.enqueue('lock-timeout', job.id, { delayMs: ctx.config.lockWindowMs, key: String(attempt) })
  return 'placed'
}

/** The durable 'dispatch' task (queued by tools and older coordinators): run a placement pass. */
export async function dispatch(ctx: CoordinatorContext, _jobId: string): Promise<TaskOutcome> {
  await placementPass(ctx)
  return { done: true }
}

/**
 * The lock window closed: keep the job if the funds arrived anyway, else put it back in the
 * queue, parked after too many lapses in a row (nothing was made on chain for it either way).
 */
export async function lockTimeout(ctx: CoordinatorContext, jobId: string): Promise<TaskOutcome> {
  const job = await ctx.store.get(jobId)
  if (!job || job.state !== 'matched' || !job.vault || !job.provider) return { done: true }
  if (job.lockDeadline === null) return { retryInMs: 1000 }
  if (job.lockDeadline > Date.now()) return { retryInMs: job.lockDeadline - Date.now() }
  const lock = await checkLock(ctx.connection, {
    jobId: escrowIdOf(ctx, job),
    mint: ctx.mint,
    vault: job.vault as Address,
    client: job.client as Address,
    provider: job.provider as Address,
    arbiter: ctx.arbiter.address,
    amount: job.lockAmount ?? 0,
  })
  if (lock.ok) {
    const locked = await ctx.store.transition(
      jobId,
      ['matched'],
      'locked',
      'funds found in the vault at the lock deadline',
      { lockSignature: job.lockSignature, runDeadline: runDeadline(job.spec.timeoutSec), lapses: 0 },
    )
    if (locked) ctx.next.run(locked)
    return { done: true }
  }
  const lapse = afterLapse(ctx, job)
  const why = `client did not lock funds within ${ctx.config.lockWindowMs} ms (${lock.reason})`
  const back = await ctx.store.transition(
    jobId,
    ['matched'],
    'queued',
    lapse.parkedAt === null ? why : `${why}; ${lapse.lapses} times in a row: not placed again until its owner is back`,
    {
      provider: null,
      vault: null,
      multisig: null,
      lockAmount: null,
      pricePerHour: null,
      lockDeadline: null,
      ...lapse,
    },
    { lapses: lapse.lapses },
  )
  if (back && lapse.parkedAt !== null) {
    ctx.book.wait(jobId, parkedReason(back))
    ctx.log.info({ jobId, lapses: lapse.lapses }, 'job parked: its owner did not lock it')
  }
  if (back) ctx.next.place()
  return { done: true }
}
