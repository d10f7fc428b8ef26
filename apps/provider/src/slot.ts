import { KilnError, type Lease } from '@kiln/protocol'

/**
 * The one job this provider holds, as one value: idle; leased (a lease passed admission and
 * its bond is being posted, nothing runs yet); or running (the container's run is under way,
 * `abort` stops it, `done` resolves when it has ended).
 */
export type Slot =
  | { kind: 'idle' }
  | { kind: 'leased'; jobId: string }
  | {
      kind: 'running'
      lease: Lease
      abort: AbortController
      acceptedAt: number
      startedAt: number | null
      /** Why the owner asked to stop it, once they did. */
      stopping: string | null
      done: Promise<void>
    }

export type RunningSlot = Extract<Slot, { kind: 'running' }>

const holder = (slot: Slot): string | undefined =>
  slot.kind === 'idle' ? undefined : slot.kind === 'leased' ? slot.jobId : slot.lease.jobId

/** A transition the job protocol never makes: a bug here, so it stops loudly. */
function wrongSlot(want: string, slot: Slot, jobId: string): KilnError {
  const held = slot.kind === 'idle' ? 'idle' : `${slot.kind} by ${holder(slot)}`
  return new KilnError('INTERNAL_ERROR', `the job slot must be ${want} for ${jobId}, but it is ${held}`, { jobId })
}

export function createSlot(now: () => number = Date.now) {
  let slot: Slot = { kind: 'idle' }
  let finish = () => {}
  return {
    get: (): Slot => slot,
    /** The job holding the slot, leased or running. */
    jobId: (): string | undefined => holder(slot),
    running: (): RunningSlot | undefined => (slot.kind === 'running' ? slot : undefined),
    /** idle → leased. Admission calls it in the same turn as its last check, so no second lease gets in. */
    lease(jobId: string): void {
      if (slot.kind !== 'idle') throw wrongSlot('idle', slot, jobId)
      slot = { kind: 'leased', jobId }
    },
    /** leased → running. */
    begin(lease: Lease, abort: AbortController): RunningSlot {
      if (slot.kind !== 'leased' || slot.jobId !== lease.jobId) throw wrongSlot('leased', slot, lease.jobId)
      const done = new Promise<void>((resolve) => {
        finish = resolve
      })
      const running: RunningSlot = {
        kind: 'running',
        lease,
        abort,
        acceptedAt: now(),
        startedAt: null,
        stopping: null,
        done,
      }
      slot = running
      return running
    },
    started(at: number): void {
      if (slot.kind === 'running') slot = { ...slot, startedAt: at }
    },
    /** Asks the running job to stop, saying why; false when nothing runs or it is stopping already. */
    stop(reason: string): boolean {
      if (slot.kind !== 'running' || slot.stopping) return false
      slot = { ...slot, stopping: reason }
      slot.abort.abort(new Error(reason))
      return true
    },
    /** leased or running → idle, for this job only; says what it was (undefined: another job holds it, or none). */
    release(jobId: string): 'leased' | 'running' | undefined {
      if (slot.kind === 'idle' || holder(slot) !== jobId) return undefined
      const was = slot.kind
      slot = { kind: 'idle' }
      if (was === 'running') finish()
      return was
    },
  }
}

export type JobSlot = ReturnType<typeof createSlot>
