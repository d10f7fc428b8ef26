import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { KilnError, takePidLock, type PidLock } from '@kiln/protocol'

/** `<data>/daemon.lock` holds the PID of the one daemon serving that data dir. */
export const LOCK_FILE = 'daemon.lock'

export type DaemonLock = PidLock

function running(dataDir: string, path: string, pid: number | undefined): KilnError {
  if (pid === undefined)
    return new KilnError('PROVIDER_ALREADY_RUNNING', `could not take ${path}: other starts keep taking it`, {
      dataDir,
      path,
    })
  return new KilnError(
    'PROVIDER_ALREADY_RUNNING',
    `a kiln-provider daemon (pid ${pid}) is already running for ${dataDir}; stop it first (kiln-provider pause, then kill ${pid}), or start another provider with --data <another dir> (if no such process is a kiln-provider, delete ${path})`,
    { pid, dataDir, path },
  )
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
  return takePidLock(path, (pid) => running(dataDir, path, pid))
}
