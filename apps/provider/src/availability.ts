import { processLabel } from './auto-pause.ts'
import type { GpuProcess } from './hardware.ts'

/** What the owner sees: serving, paused by them, or paused by us because the GPU is in use. */
export type OwnerState = 'running' | 'paused' | 'auto-paused'

export interface AvailabilityInput {
  paused: boolean
  auto?: GpuProcess
  /** Why the Docker engine cannot be used, when it cannot. */
  dockerProblem?: string
  /** Crash recovery has not run yet (it needs Docker). */
  recovering?: boolean
  /** Why the wallet cannot post a bond, when it cannot. */
  unfunded?: string
  busy: boolean
}

export interface Availability {
  state: OwnerState
  available: boolean
  reason?: string
}

export const REASON_PAUSED = 'paused by owner'

/** What the advert says. The owner's choice comes first, then the GPU, the engine, the wallet, then work. */
export function availability(s: AvailabilityInput): Availability {
  const state: OwnerState = s.paused ? 'paused' : s.auto ? 'auto-paused' : 'running'
  const reason = s.paused
    ? REASON_PAUSED
    : s.auto
      ? `GPU in use by ${processLabel(s.auto)}`
      : s.dockerProblem
        ? `Docker engine unavailable: ${s.dockerProblem}`
        : s.recovering
          ? 'recovering jobs from before a restart'
          : s.unfunded
            ? s.unfunded
            : s.busy
              ? 'running a job'
              : undefined
  // The advert schema caps the reason; a long engine error must not make the advert invalid.
  return reason === undefined ? { state, available: true } : { state, available: false, reason: reason.slice(0, 200) }
}

export interface AvailabilitySources {
  /** The foreign GPU process that auto-paused us, while auto-paused. */
  autoPausedBy(): GpuProcess | undefined
  /** Why the wallet cannot post a bond, when it cannot. */
  unfunded(): string | undefined
  /** A job holds the slot. */
  busy(): boolean
}

/**
 * Whether this provider takes work now. It owns the owner's pause, the engine's state and
 * whether crash recovery has run, and asks the GPU watch, the wallet and the job slot for
 * theirs; `now()` folds them into the one answer the advert, the status and admission share.
 */
export function createAvailability(src: AvailabilitySources) {
  let pausedAt: number | undefined
  // Nothing is accepted before the first check of the engine (and crash recovery after it).
  let dockerProblem: string | undefined = 'the engine was not checked yet'
  let recovered = false
  return {
    now: (): Availability => {
      const by = src.autoPausedBy()
      const unfunded = src.unfunded()
      return availability({
        paused: pausedAt !== undefined,
        ...(by ? { auto: by } : {}),
        ...(dockerProblem ? { dockerProblem } : {}),
        recovering: !recovered,
        busy: src.busy(),
        ...(unfunded ? { unfunded } : {}),
      })
    },
    pausedAt: () => pausedAt,
    /** True when this call paused it (it was not paused before). */
    pause(at: number): boolean {
      if (pausedAt !== undefined) return false
      pausedAt = at
      return true
    },
    resume(): void {
      pausedAt = undefined
    },
    dockerProblem: () => dockerProblem,
    /** What the last ping said: undefined when the engine answered. */
    setDocker(problem: string | undefined): void {
      dockerProblem = problem
    },
    recovered: () => recovered,
    markRecovered(): void {
      recovered = true
    },
  }
}

export type AvailabilityState = ReturnType<typeof createAvailability>
