import { linkSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { KilnError } from '@kiln/protocol'

/** `<data>/daemon.lock` holds the PID of the one daemon serving that data dir. */
export const LOCK_FILE = 'daemon.lock'

export interface DaemonLock {
  path: string
  /** Removes the lock if it is still ours; safe to call twice. */
  release(): void
}

/** True while `pid` is a process (EPERM: one of another user's, which is alive too). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function readPid(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim())
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

function running(dataDir: string, path: string, pid: number): KilnError {
  return new KilnError('PROVIDER_ALREADY_RUNNING',
    `a kiln-provider daemon (pid ${pid}) is already running for ${dataDir}; stop it first (kiln-provider pause, then kill ${pid}), or start another provider with --data <another dir> (if no such process is a kiln-provider, delete ${path})`,
    { pid, dataDir, path })
}

/** Creates the lock with our PID in it, or false if it exists: linked whole, so no one ever reads it half-written. */
function create(path: string): boolean {
  const tmp = `${path}.${process.pid}.tmp`
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

/**
 * Takes `<dataDir>/daemon.lock` or throws PROVIDER_ALREADY_RUNNING naming the PID that holds
 * it. Two daemons on one data dir would share an identity and overwrite each other's
 * dashboard token, so the second one must not start. A lock whose process is gone (killed,
 * crashed) is taken over.
 */
export function acquireDaemonLock(dataDir: string): DaemonLock {
  mkdirSync(dataDir, { recursive: true })
  const path = join(dataDir, LOCK_FILE)
  for (let attempt = 0; attempt < 5; attempt++) {
    if (create(path)) return { path, release: () => { if (readPid(path) === process.pid) rmSync(path, { force: true }) } }
    const pid = readPid(path)
    if (pid !== undefined && pid !== process.pid && alive(pid)) throw running(dataDir, path, pid)
    // Stale. Moved aside rather than deleted: of two starts taking over the same stale lock,
    // only one rename finds it.
    const aside = `${path}.${process.pid}.stale`
    try {
      renameSync(path, aside)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue
      throw e
    }
    const moved = readPid(aside)
    if (moved !== undefined && moved !== pid && moved !== process.pid && alive(moved)) {
      // We raced a start that had just taken it: give it back (link fails if a third took the place).
      try { linkSync(aside, path) } catch { /* the place is taken again; that one holds it */ }
      rmSync(aside, { force: true })
      throw running(dataDir, path, moved)
    }
    rmSync(aside, { force: true })
  }
  const pid = readPid(path)
  throw pid ? running(dataDir, path, pid) : new KilnError('PROVIDER_ALREADY_RUNNING', `could not take ${path}: other starts keep taking it`, { dataDir, path })
}
