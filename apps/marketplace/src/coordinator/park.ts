import type { Job, JobPatch } from '@kiln/scheduler'
import type { CoordinatorContext } from './types.ts'

/** Lock windows in a row a job may miss before it is parked, when the config does not say. */
export const PARK_AFTER_LAPSES = 3

/** What `kiln status` shows for a parked job or run: the one thing that gets it going again. */
export function parkedReason(run: Pick<Job, 'id' | 'parentId'>): string {
  return `waiting for your lock: run kiln watch ${run.parentId ?? run.id}`
}

/**
 * A lock window closed without the owner's lock. A job submitted with `--no-wait`, or left by
 * Ctrl-C, would otherwise be matched again and again for nobody, holding a provider through
 * every window; after `parkAfterLapses` in a row it stays queued and is not placed, in the
 * database, so a restarted or another coordinator keeps it parked too.
 */
export function afterLapse(
  ctx: Pick<CoordinatorContext, 'config'>,
  run: Pick<Job, 'lapses'>,
  now = Date.now(),
): Required<Pick<JobPatch, 'lapses' | 'parkedAt'>> {
  const lapses = run.lapses + 1
  return { lapses, parkedAt: lapses >= (ctx.config.parkAfterLapses ?? PARK_AFTER_LAPSES) ? now : null }
}

/**
 * The owner of `jobId` is back (it made a signed read of the job, as `kiln watch` does): the
 * job and its runs are placed again, with a fresh count of lapses. Call it only for a read
 * signed by the job's owner. Every coordinator's next placement pass (each `rematchMs`) sees
 * it, as it lives in the database. Returns whether anything was parked.
 */
export async function ownerReturned(
  ctx: Pick<CoordinatorContext, 'store' | 'book' | 'log'>,
  jobId: string,
): Promise<boolean> {
  const runs = await ctx.store.unpark(jobId, 'its owner came back: placing it again')
  for (const id of runs) ctx.book.unwait(id)
  if (runs.length > 0) ctx.log.info({ jobId, runs: runs.length }, 'parked job placed again: its owner came back')
  return runs.length > 0
}
