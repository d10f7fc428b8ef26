import { join } from 'node:path'
import { tarEntryToFile, type ArtifactStore } from '@kiln/artifacts'
import { KilnError, randomHex, type JobInput, type JobSpec, type KilnErrorName } from '@kiln/protocol'
import type { Job } from '@kiln/scheduler'

export interface ResolveDeps {
  getJob(id: string): Promise<Pick<Job, 'id' | 'client' | 'state' | 'outputDigest' | 'outputBytes'> | undefined>
  /** Outputs by digest; a file taken out of one is stored here too, by its own digest. */
  artifacts: ArtifactStore
  /** Scratch space on the artifact store's filesystem (a file is renamed into the store). */
  tmpDir: string
}

const JOB_SOURCE = /^job:(job_[0-9a-z]{10,40})(?:\/out(?:\/(.+))?)?$/

function refused(kind: KilnErrorName, index: number, message: string, expected: string): KilnError {
  return new KilnError(kind, `inputs[${index}].source: ${message}`, {
    issues: [{ path: `inputs.${index}.source`, message, expected }],
  })
}

/**
 * Gives every `job:` input of a spec the digest and size of what it names, so the lease
 * (and the provider, which checks the bytes against them) knows exactly what to fetch.
 * Only the client's own finished jobs can be named: anyone else's is reported as not found,
 * so a spec cannot probe which jobs exist. `job:<id>` is the whole output (a folder);
 * `job:<id>/out/<path>` one file of it, copied out of the archive into the artifact store.
 */
export async function resolveInputs(spec: JobSpec, client: string, deps: ResolveDeps): Promise<JobSpec> {
  if (!spec.inputs.some((i) => i.source.startsWith('job:'))) return spec
  const inputs: JobInput[] = []
  for (const [index, input] of spec.inputs.entries()) {
    const m = JOB_SOURCE.exec(input.source)
    if (!m) {
      inputs.push(input)
      continue
    }
    const [, id, path] = m as unknown as [string, string, string | undefined]
    const job = await deps.getJob(id)
    if (!job || job.client !== client)
      throw refused('JOB_NOT_FOUND', index, `no job ${id} of yours`, 'the id of one of your own jobs')
    if (job.state !== 'done' || !job.outputDigest || !deps.artifacts.has(job.outputDigest))
      throw refused(
        'JOB_WRONG_STATE',
        index,
        `job ${id} has no verified output (it is ${job.state})`,
        'a job that is done, with an output',
      )
    if (path === undefined) {
      inputs.push(check(index, input, { sha256: job.outputDigest, size: job.outputBytes ?? 0, kind: 'dir' }))
      continue
    }
    const tmp = join(deps.tmpDir, `entry-${randomHex(8)}`)
    const file = await tarEntryToFile(deps.artifacts.open(job.outputDigest), path, tmp)
    if (!file)
      throw refused('ARTIFACT_NOT_FOUND', index, `job ${id}'s output has no file ${path}`, 'a file path in its /out')
    deps.artifacts.adopt(tmp, file.sha256)
    inputs.push(check(index, input, { ...file, kind: 'file' }))
  }
  return { ...spec, inputs }
}

/** A spec may state the digest, size or kind of a job: input itself; they must match what it names. */
function check(
  index: number,
  input: JobInput,
  found: { sha256: string; size: number; kind: 'file' | 'dir' },
): JobInput {
  if (input.sha256 !== undefined && input.sha256 !== found.sha256)
    throw refused(
      'INPUT_DIGEST_MISMATCH',
      index,
      `names bytes with sha256 ${found.sha256}, not the ${input.sha256} the spec states`,
      'no sha256 for a job: source, or the right one',
    )
  return { ...input, sha256: found.sha256, size: found.size, kind: found.kind }
}
