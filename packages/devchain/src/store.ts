import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs'
import { open, rename } from 'node:fs/promises'
import { join } from 'node:path'
import { KilnError } from '@kiln/protocol'
import type { LedgerState } from './ledger.ts'

export const LEDGER_FILE = 'ledger.json'

/** Reads `<dir>/ledger.json`, or undefined on a first start. A damaged file stops the start. */
export function loadLedger(dir: string): LedgerState | undefined {
  const path = join(dir, LEDGER_FILE)
  if (!existsSync(path)) return undefined
  let state: LedgerState
  try {
    state = JSON.parse(readFileSync(path, 'utf8')) as LedgerState
  } catch (cause) {
    throw new KilnError(
      'CONFIG_INVALID',
      `devchain ledger ${path} is unreadable; move it away to start a fresh chain`,
      { path },
      { cause },
    )
  }
  if (state.format !== 1 || typeof state.svm !== 'string' || typeof state.seed !== 'string') {
    throw new KilnError(
      'CONFIG_INVALID',
      `devchain ledger ${path} has an unknown format; move it away to start a fresh chain`,
      { path },
    )
  }
  return state
}

/** Writes the ledger atomically: a temp file, fsync'd, renamed over the old one. */
export function saveLedger(dir: string, state: LedgerState): void {
  mkdirSync(dir, { recursive: true })
  const path = join(dir, LEDGER_FILE)
  const tmp = `${path}.${process.pid}.tmp`
  const fd = openSync(tmp, 'w', 0o600)
  try {
    writeSync(fd, JSON.stringify(state))
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  renameSync(tmp, path)
}

/** The same, without blocking the event loop during the write (the snapshot is taken first). */
export async function saveLedgerAsync(dir: string, state: LedgerState): Promise<void> {
  const text = JSON.stringify(state)
  mkdirSync(dir, { recursive: true })
  const path = join(dir, LEDGER_FILE)
  const tmp = `${path}.${process.pid}.tmp`
  const fh = await open(tmp, 'w', 0o600)
  try {
    await fh.writeFile(text)
    await fh.sync()
  } finally {
    await fh.close()
  }
  await rename(tmp, path)
}
