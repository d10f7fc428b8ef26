import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { spawnPart } from '../support/network.ts'
import { useNetwork } from '../support/use-network.ts'

/** Real marketplace processes on one data directory (embedded PGlite). */
describe('one marketplace per embedded database', () => {
  const fx = useNetwork({ providers: 0 })
  const logDir = () => join(fx.net.dataDir, 'logs')
  const dbDir = () => join(fx.net.dataDir, 'marketplace', 'db')
  const start = (name: string) =>
    spawnPart(
      name,
      'apps/marketplace/src/bin.ts',
      [],
      {
        KILN_DATA_DIR: join(fx.net.dataDir, 'marketplace'),
        KILN_PORT: '0',
        KILN_MESH_LISTEN: '/ip4/127.0.0.1/tcp/0',
        REDIS_URL: fx.net.redis.url,
        SOLANA_RPC_URL: fx.net.rpcUrl,
        KILN_MINT: fx.net.mint,
        KILN_WEB: 'off',
        KILN_LOG_LEVEL: 'info',
      },
      logDir(),
    )
  /** What the process wrote to stderr (its log file also holds its stdout, marked). */
  const stderrOf = (name: string) =>
    readFileSync(join(logDir(), `${name}.log`), 'utf8')
      .split('\n')
      .filter((l) => l !== '' && !l.startsWith('[stdout]'))

  it('refuses a second marketplace on the same data dir in one line naming the first; after a kill -9 the dir opens again', async () => {
    const first = fx.net.markets[0]!
    await expect(start('second')).rejects.toThrow(/exited with 1 before it was ready/)
    expect(stderrOf('second')).toEqual([
      expect.stringMatching(
        new RegExp(
          `^marketplace failed to start: KILN_9003 the embedded database ${dbDir()} is in use by process ${first.child.pid},`,
        ),
      ),
    ])
    expect((await fetch(`${fx.net.api}/healthz`)).status).toBe(200)
    // Killed: its lock stays behind, naming a process that is gone, and is taken over.
    await fx.net.restartMarketplace(0, { crash: true })
    expect((await fetch(`${fx.net.api}/healthz`)).status).toBe(200)
  })

  it('says which directory to back up, how to start fresh and how to recover vaults when the database does not open', async () => {
    await fx.net.markets[0]!.stop()
    const wal = join(dbDir(), 'pg_wal')
    for (const f of readdirSync(wal).filter((n) => /^[0-9A-F]{24}$/.test(n)))
      writeFileSync(join(wal, f), Buffer.alloc(100_000, 0x5a), { flag: 'r+' })
    await expect(start('damaged')).rejects.toThrow(/exited with 1 before it was ready/)
    const lines = stderrOf('damaged')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(
      new RegExp(`^marketplace failed to start: KILN_9004 the embedded database in ${dbDir()} does not open`),
    )
    expect(lines[0]).toContain(`cp -a ${dbDir()} ${dbDir()}.bak`)
    expect(lines[0]).toContain(`mv ${dbDir()} ${dbDir()}.broken`)
    expect(lines[0]).toContain(join(fx.net.dataDir, 'marketplace', 'arbiter.json'))
    expect(lines[0]).toContain('kiln vault recover <vault>')
    expect(lines[0]).not.toMatch(/Aborted/)
  })
})
