import { resolve } from 'node:path'
import { KilnError, takePidLock } from '@kiln/protocol'

/**
 * Takes `<dir>.lock` so that one process at a time opens the embedded database in `dir`: two
 * would each keep their own view of its files and leave them so that they no longer open. A
 * lock left by a process that is gone (killed, crashed) is taken over. Returns the release.
 */
export function lockDataDir(dir: string): () => void {
  const abs = resolve(dir)
  const path = `${abs}.lock`
  return takePidLock(path, (pid) => {
    const who =
      pid === undefined
        ? 'other processes that keep taking it'
        : pid === process.pid
          ? 'this process'
          : `process ${pid}`
    return new KilnError(
      'DATABASE_IN_USE',
      `the embedded database ${abs} is in use by ${who}, and a second process on it would corrupt it: stop that one first, or start this one on another data directory (several processes can share a Postgres server instead)${pid === undefined ? '' : `; if ${pid} is no Kiln process, delete ${path}`}`,
      { dataDir: abs, pid, lockFile: path },
    )
  }).release
}
