import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { openDb } from '../src/index.ts'

const newDir = () => join(mkdtempSync(join(tmpdir(), 'kiln-dblock-')), 'db')

describe('the embedded database serves one process', () => {
  it('refuses a second open of a data dir while it is open, and opens again once closed', async () => {
    const dir = newDir()
    const first = await openDb({ dataDir: dir })
    await expect(openDb({ dataDir: dir })).rejects.toMatchObject({
      kind: 'DATABASE_IN_USE',
      code: 'KILN_9003',
      message: expect.stringMatching(/in use by this process/),
    })
    await first.close()
    expect(existsSync(`${dir}.lock`)).toBe(false)
    await (await openDb({ dataDir: dir })).close()
  })

  it('names the live process holding the lock, and takes over a lock whose process is gone', async () => {
    const dir = newDir()
    await (await openDb({ dataDir: dir })).close()
    const other = spawn('sleep', ['30'], { stdio: 'ignore' })
    writeFileSync(`${dir}.lock`, `${other.pid}\n`)
    try {
      await expect(openDb({ dataDir: dir })).rejects.toMatchObject({
        kind: 'DATABASE_IN_USE',
        context: { pid: other.pid },
        message: expect.stringMatching(new RegExp(`in use by process ${other.pid}.*delete ${dir}\\.lock`)),
      })
    } finally {
      other.kill('SIGKILL')
      await new Promise((r) => other.once('exit', r))
    }
    const after = await openDb({ dataDir: dir })
    await after.close()
    // A lock naming our own PID that we do not hold was left by an earlier process given this PID.
    writeFileSync(`${dir}.lock`, `${process.pid}\n`)
    await (await openDb({ dataDir: dir })).close()
  })

  it('says which directory to back up and how to start fresh when the files do not open, instead of Aborted()', async () => {
    const dir = newDir()
    await (await openDb({ dataDir: dir })).close()
    // Damaged write-ahead log: PGlite itself only says "Aborted()".
    for (const f of readdirSync(join(dir, 'pg_wal')).filter((n) => /^[0-9A-F]{24}$/.test(n)))
      writeFileSync(join(dir, 'pg_wal', f), Buffer.alloc(100_000, 0x5a), { flag: 'r+' })
    const err = await openDb({ dataDir: dir, recovery: 'Keep the keys beside it.' }).catch((e: unknown) => e)
    expect(err).toMatchObject({ kind: 'DATABASE_UNOPENABLE', code: 'KILN_9004', context: { dataDir: dir } })
    const message = (err as Error).message
    expect(message).toContain(`cp -a ${dir} ${dir}.bak`)
    expect(message).toContain(`mv ${dir} ${dir}.broken`)
    expect(message).toMatch(/Keep the keys beside it\.$/)
    expect(message).not.toMatch(/Aborted/)
    expect(existsSync(`${dir}.lock`)).toBe(false)
  })
})
