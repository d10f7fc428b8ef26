import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Address } from '@kiln/protocol'
import type { JobJournal, JobRecord } from './journal.ts'
import { receiptOf } from './receipts.ts'
import type { Logger } from './log.ts'
import type { DockerRuntime, Leftover } from './runtime/index.ts'

export interface RecoveryInit {
  journal: JobJournal
  runtime: DockerRuntime
  provider: Address
  /** Where packed outputs of results that were never delivered are kept. */
  resultsDir: string
  log: Logger
  now?: () => number
}

export interface RecoveryReport {
  /** Jobs whose container had finished: their result is packed and journaled, not yet delivered. */
  finished: string[]
  /** Jobs whose run was lost: recorded failed with the reason. */
  failed: string[]
  /** Containers removed (ours, and any kiln.managed one no record accounts for). */
  removed: string[]
}

export const RESTART_REASON = 'provider restarted mid-job'

/**
 * Run at start, before any new lease: squares the journal with what the Docker engine holds.
 * A container that finished while we were down still produced a result, so it is packed and
 * receipted (the receipt stays in the journal for the settlement to come); one that was still
 * running lost its job stream, so it is stopped and the job recorded failed; a job whose
 * container is gone is failed too. Then every kiln.managed container and job dir goes.
 */
export async function recoverJobs(init: RecoveryInit): Promise<RecoveryReport> {
  const { journal, runtime, log } = init
  const now = init.now ?? Date.now
  const leftovers = await runtime.leftovers()
  const report: RecoveryReport = { finished: [], failed: [], removed: [] }
  for (const rec of journal.all().filter((r) => r.state === 'accepted' || r.state === 'running')) {
    const jobId = rec.lease.jobId
    const mine = leftovers.filter((l) => l.jobId === jobId)
    const live = mine.filter((l) => l.running)
    for (const l of live) await runtime.kill(l.id)
    const done = mine.find((l) => !l.running && l.startedAt !== null)
    if (live.length === 0 && done) {
      await finishFromLeftover(init, rec, done)
      report.finished.push(jobId)
      continue
    }
    const why =
      live.length > 0
        ? `${RESTART_REASON}: its container was still running and was stopped`
        : mine.length > 0
          ? `${RESTART_REASON}: its container never started`
          : `${RESTART_REASON}: its container was gone`
    const startedAt = live[0]?.startedAt ?? rec.startedAt ?? null
    journal.update(jobId, { state: 'failed', error: why, startedAt, recoveredAt: now() })
    log.warn({ jobId, reason: why }, 'job failed by a restart')
    report.failed.push(jobId)
  }
  const unaccounted = leftovers.filter((l) => !l.jobId || !journal.has(l.jobId))
  for (const l of unaccounted)
    log.warn({ container: l.name, jobId: l.jobId }, 'kiln container no journal record accounts for; removing it')
  report.removed = (await runtime.reconcile()).removed
  return report
}

async function finishFromLeftover(init: RecoveryInit, rec: JobRecord, l: Leftover): Promise<void> {
  const { lease } = rec
  const collected = await init.runtime.collect(l, lease.spec.outputs.maxBytes)
  const started = l.startedAt as number
  const ended = l.finishedAt ?? init.now?.() ?? Date.now()
  // Receipts carry whole milliseconds; the seconds keep the engine's precision.
  const startedAt = Math.floor(started)
  const endedAt = Math.ceil(ended)
  let seconds = Math.max(0, (ended - started) / 1000)
  let error: { kind: 'CONTAINER_FAILED' | 'CONTAINER_TIMEOUT'; message: string } | undefined
  // Nobody enforced the timeout while we were down: a run past it counts as timed out, paid up to the limit.
  if (seconds > lease.spec.timeoutSec) {
    seconds = lease.spec.timeoutSec
    error = {
      kind: 'CONTAINER_TIMEOUT',
      message: `the job ran past its timeout of ${lease.spec.timeoutSec} s while the provider was down`,
    }
  } else if (l.exitCode !== 0) {
    error = {
      kind: 'CONTAINER_FAILED',
      message: l.oomKilled
        ? `the container ran out of memory (limit ${lease.spec.resources.memoryMb} MiB) and was killed`
        : `the container exited with code ${l.exitCode ?? 'unknown'}`,
    }
  } else if (collected.outputError) {
    error = { kind: 'CONTAINER_FAILED', message: collected.outputError }
  }
  const receipt = receiptOf(lease, init.provider, {
    status: error ? 'failed' : 'succeeded',
    exitCode: l.exitCode,
    ...(error ? { error } : {}),
    output: collected.output,
    logDigest: collected.logDigest,
    logBytes: collected.logBytes,
    startedAt,
    endedAt,
    containerSeconds: seconds,
    ...(collected.logPartial ? { logPartial: true } : {}),
  })
  let outputPath: string | undefined
  if (collected.output) {
    mkdirSync(init.resultsDir, { recursive: true })
    outputPath = join(init.resultsDir, `${collected.output.digest}.tar`)
    writeFileSync(outputPath, collected.output.tar)
  }
  init.journal.update(lease.jobId, {
    state: 'finished',
    receipt,
    delivered: false,
    startedAt,
    recoveredAt: init.now?.() ?? Date.now(),
    ...(outputPath ? { outputPath } : {}),
  })
  if (collected.logPartial)
    init.log.warn(
      { jobId: lease.jobId, logBytes: collected.logBytes },
      "the engine's capped log files may have dropped the start of this job's log; its receipt says the log digest covers what they kept",
    )
  init.log.info(
    { jobId: lease.jobId, status: receipt.status, outputDigest: receipt.outputDigest },
    'recovered the result of a job that finished while the provider was down',
  )
}
