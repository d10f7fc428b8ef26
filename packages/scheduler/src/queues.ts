import { DelayedError, Queue, Worker, type ConnectionOptions, type Job as BullJob } from 'bullmq'

/** Versioned payload: a worker refuses shapes it does not know rather than guessing. */
export interface LifecyclePayload {
  v: 1
  jobId: string
}

export type LifecycleTask = 'dispatch' | 'lock-timeout' | 'settle'

/** What a handler decided: finished, or try again later (the job stays in Redis meanwhile). */
export type TaskOutcome = { done: true } | { retryInMs: number }

export interface LifecycleHandlers {
  dispatch(jobId: string): Promise<TaskOutcome>
  'lock-timeout'(jobId: string): Promise<TaskOutcome>
  settle(jobId: string): Promise<TaskOutcome>
}

export interface LifecycleQueuesInit {
  connection: ConnectionOptions
  /** Redis key prefix, so that several networks (or tests) can share one Redis. */
  prefix?: string
  concurrency?: number
  onError?: (task: string, jobId: string, err: unknown) => void
}

export interface LifecycleQueues {
  enqueue(task: LifecycleTask, jobId: string, opts?: { delayMs?: number; key?: string }): Promise<void>
  start(handlers: LifecycleHandlers): Promise<void>
  stop(): Promise<void>
  counts(): Promise<Record<string, number>>
}

const QUEUE = 'kiln-lifecycle'

export function createLifecycleQueues(init: LifecycleQueuesInit): LifecycleQueues {
  const prefix = init.prefix ?? 'kiln'
  const queue = new Queue<LifecyclePayload>(QUEUE, { connection: init.connection, prefix })
  let worker: Worker<LifecyclePayload> | undefined

  return {
    async enqueue(task, jobId, opts = {}) {
      // The BullMQ id dedupes: the same task for the same job (and key) is queued once.
      const id = [task, jobId, opts.key].filter(Boolean).join('-')
      await queue.add(
        task,
        { v: 1, jobId },
        {
          jobId: id,
          delay: opts.delayMs,
          attempts: 20,
          backoff: { type: 'exponential', delay: 500 },
          removeOnComplete: true,
          removeOnFail: { age: 7 * 24 * 3600 },
        },
      )
    },
    async start(handlers) {
      worker = new Worker<LifecyclePayload>(
        QUEUE,
        async (job: BullJob<LifecyclePayload>, token?: string) => {
          if (job.data.v !== 1) throw new Error(`unknown payload version ${String(job.data.v)}`)
          const handler = handlers[job.name as LifecycleTask]
          if (!handler) throw new Error(`unknown lifecycle task ${job.name}`)
          const outcome = await handler(job.data.jobId)
          if ('retryInMs' in outcome) {
            // Not a failure: park the task and come back, without using up an attempt.
            await job.moveToDelayed(Date.now() + outcome.retryInMs, token)
            throw new DelayedError()
          }
        },
        {
          connection: init.connection,
          prefix,
          concurrency: init.concurrency ?? 8,
          // Tuned so that a coordinator killed mid-task has its work picked up in seconds (FACTS.md).
          lockDuration: 5000,
          stalledInterval: 5000,
        },
      )
      worker.on('failed', (job, err) => init.onError?.(job?.name ?? '?', job?.data.jobId ?? '?', err))
      worker.on('error', (err) => init.onError?.('worker', '-', err))
      await worker.waitUntilReady()
    },
    async stop() {
      await worker?.close()
      await queue.close()
    },
    async counts() {
      return queue.getJobCounts('waiting', 'active', 'delayed', 'failed')
    },
  }
}
