import { linkSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import type { KilnError } from './errors.ts'

export interface PidLock {
  path: string
  /** Removes the lock if it is still ours; safe to call twice. */
  release(): void
}

/** Locks this process holds: a lock naming our PID that is not among them was left by an earlier process given the same PID. */
const held = new Set<string>()

/** True while `pid` is a process (EPERM: another user's, alive all the same). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function pidIn(path: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(path, 'utf8'), 10)
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

/** Exclusive create, whole: the PID is written to a file of our own first and linked into place, so no one reads it half-written. */
function create(path: string): boolean {
  const tmp = `${path}.${process.pid}.new`
  writeFileSync(tmp, `${process.pid}\n`, { mode: 0o644 })
  try {
    linkSync(tmp, path)
    return true
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw e
  } finally {
    rmSync(tmp, { force: true })
  }
}

const liveHolder = (pid: number | undefined, path: string): pid is number =>
  pid !== undefined && isAlive(pid) && (pid !== process.pid || held.has(path))

/**
 * Takes the lock file `path` for this process, or throws `inUse(pid)` naming the live process
 * that holds it (pid undefined: other processes kept taking it). A lock whose process is gone
 * (killed, crashed) is taken over.
 */
export function takePidLock(path: string, inUse: (pid: number | undefined) => KilnError): PidLock {
  for (let round = 0; round < 5; round++) {
    if (create(path)) {
      held.add(path)
      return {
        path,
        release: () => {
          if (held.delete(path) && pidIn(path) === process.pid) rmSync(path, { force: true })
        },
      }
    }
    const pid = pidIn(path)
    if (liveHolder(pid, path)) throw inUse(pid)
    // Stale. Renamed aside, not deleted: of two processes taking over one stale lock only one
    // rename finds it, and neither deletes the fresh lock the other may have made meanwhile.
    const aside = `${path}.${process.pid}.stale`
    try {
      renameSync(path, aside)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue
      throw e
    }
    const moved = pidIn(aside)
    if (moved !== pid && liveHolder(moved, path)) {
      // A fresh lock, made between our look and our rename: put it back (unless a third took the place).
      try {
        linkSync(aside, path)
      } catch {
        /* that one holds it now */
      }
      rmSync(aside, { force: true })
      throw inUse(moved)
    }
    rmSync(aside, { force: true })
  }
  throw inUse(pidIn(path))
}
