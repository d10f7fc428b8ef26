import { basename } from 'node:path'
import type { GpuProcess } from './hardware.ts'

/**
 * Gamer mode as pure functions over plain data: which GPU processes are someone else's, when
 * to pause by ourselves and when to resume.
 */

export interface AutoPause {
  /** The foreign process that made us pause; unset while not auto-paused. */
  by?: GpuProcess
  /** When a foreign process was last seen; the idle time counts from here. */
  lastForeignAt?: number
  /**
   * PIDs the owner said to ignore (they resumed while these ran). Forgotten once they exit,
   * so the next game pauses us again.
   */
  ignored?: number[]
}

/** Windows and Linux drivers print full paths; the owner knows the program by its file name. */
export function processLabel(p: GpuProcess): string {
  const name = p.name.replace(/\\/g, '/')
  return basename(name) || p.name
}

/** GPU processes that are not in Kiln's own containers and not on the owner's ignore list. */
export function foreignProcesses(
  procs: GpuProcess[],
  kilnPids: ReadonlySet<number>,
  ignoreNames: readonly string[] = [],
): GpuProcess[] {
  const ignore = new Set(ignoreNames.map((n) => n.toLowerCase()))
  return procs.filter(
    (p) => !kilnPids.has(p.pid) && !ignore.has(p.name.toLowerCase()) && !ignore.has(processLabel(p).toLowerCase()),
  )
}

/**
 * One step of the auto-pause: pause as soon as a foreign process uses a GPU, resume after
 * `idleMs` without any. Processes the owner chose to ignore never count.
 */
export function stepAutoPause(prev: AutoPause, foreign: GpuProcess[], now: number, idleMs: number): AutoPause {
  const ignored = (prev.ignored ?? []).filter((pid) => foreign.some((p) => p.pid === pid))
  const counted = foreign.filter((p) => !ignored.includes(p.pid))
  const base: AutoPause = ignored.length ? { ignored } : {}
  if (counted.length > 0) {
    // Keep naming the process that paused us while it still runs; else the first one now.
    const by = (prev.by && counted.find((p) => p.pid === prev.by?.pid)) ?? counted[0]
    return { ...base, by, lastForeignAt: now }
  }
  if (prev.by && prev.lastForeignAt !== undefined && now - prev.lastForeignAt < idleMs) {
    return { ...base, by: prev.by, lastForeignAt: prev.lastForeignAt }
  }
  return base
}

/** The owner resumed: ignore what runs on the GPU now, until it exits. */
export function overrideAutoPause(prev: AutoPause, foreignNow: GpuProcess[]): AutoPause {
  const ignored = [...new Set([...(prev.ignored ?? []), ...foreignNow.map((p) => p.pid)])]
  return ignored.length ? { ignored } : {}
}

/** When an auto-pause will end by itself if nothing else starts; undefined while a process runs. */
export function resumesAt(a: AutoPause, foreignNow: number, idleMs: number): number | undefined {
  if (!a.by || a.lastForeignAt === undefined || foreignNow > 0) return undefined
  return a.lastForeignAt + idleMs
}
