import type { Address } from '@kiln/protocol'
import type { Job } from '@kiln/scheduler'

export interface BlobGrantDeps {
  /** Every run of a job (its own and its re-runs), by the job's public id. */
  family(jobId: string): Promise<Pick<Job, 'id' | 'parentId' | 'attempt' | 'provider' | 'state' | 'spec'>[]>
  /** The escrow id of a run's current placement (coordinator types.ts escrowIdOf). */
  escrowIdOf(run: Pick<Job, 'id' | 'parentId' | 'attempt'>): string
}

/** A provider fetches inputs between the lock and the end of its run, never before or after. */
const FETCHING_STATES = new Set<Job['state']>(['locked', 'running'])

/**
 * Whether `provider` may read the bytes `sha256`: only while it holds a lease (the run placed
 * on it under `escrowId`, locked or running) whose spec names that digest as an input. So a
 * provider reads the inputs of the job it runs, for as long as it runs it, and nothing else;
 * what it asks for says nothing about anyone else's blobs (the answer is the same no).
 */
export async function mayFetchInput(
  deps: BlobGrantDeps,
  provider: Address,
  req: { jobId: string; escrowId: string; sha256: string },
): Promise<boolean> {
  const runs = await deps.family(req.jobId)
  return runs.some(
    (run) =>
      run.provider === provider &&
      FETCHING_STATES.has(run.state) &&
      deps.escrowIdOf(run) === req.escrowId &&
      run.spec.inputs.some((i) => i.sha256 === req.sha256),
  )
}
