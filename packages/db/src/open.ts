import { mkdirSync } from 'node:fs'
import { resolve } from 'node:path'
import { PGlite } from '@electric-sql/pglite'
import { sql } from 'drizzle-orm'
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core'
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite'
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres'
import pg from 'pg'
import { KilnError } from '@kiln/protocol'
import { lockDataDir } from './dir-lock.ts'
import { MIGRATIONS } from './migrations.ts'
import * as schema from './schema.ts'

export type Db = PgDatabase<PgQueryResultHKT, typeof schema>

export interface DbInit {
  /** A Postgres server; when absent, an embedded PGlite database in `dataDir`. */
  databaseUrl?: string
  /** Directory for the embedded database; omit for an in-memory one (tests). */
  dataDir?: string
  /** Errors of idle server connections, for logging. */
  onError?: (err: Error) => void
  /**
   * What else to keep or do when the embedded database does not open, said after how to
   * back it up and start fresh (the app knows what lives beside it).
   */
  recovery?: string
}

export interface DbHandle {
  db: Db
  kind: 'pglite' | 'postgres'
  close(): Promise<void>
}

export async function openDb(init: DbInit = {}): Promise<DbHandle> {
  if (!init.databaseUrl) return openEmbedded(init)
  const pool = new pg.Pool({ connectionString: init.databaseUrl, max: 10 })
  // An idle connection dropped by the server (restart, failover) must not crash the process;
  // the pool opens a new one on the next query.
  pool.on('error', (err) => init.onError?.(err))
  const handle: DbHandle = {
    db: drizzlePg(pool, { schema }) as unknown as Db,
    kind: 'postgres',
    close: () => pool.end(),
  }
  await migrate(handle.db)
  return handle
}

/** One process at a time on a data directory; a database that does not open says how to recover. */
async function openEmbedded(init: DbInit): Promise<DbHandle> {
  const dir = init.dataDir
  let release = () => {}
  if (dir) {
    mkdirSync(dir, { recursive: true })
    release = lockDataDir(dir)
  }
  let client: PGlite
  try {
    client = new PGlite(dir)
    await client.waitReady
  } catch (cause) {
    release()
    throw dir ? unopenable(dir, cause, init.recovery) : cause
  }
  try {
    const db = drizzlePglite(client, { schema }) as unknown as Db
    await migrate(db)
    return { db, kind: 'pglite', close: () => client.close().finally(release) }
  } catch (e) {
    await client.close().catch(() => {})
    release()
    throw e
  }
}

function unopenable(dir: string, cause: unknown, recovery: string | undefined): KilnError {
  const abs = resolve(dir)
  return new KilnError(
    'DATABASE_UNOPENABLE',
    `the embedded database in ${abs} does not open: its files are damaged (a crash while two processes used it, or a full or failing disk). Copy ${abs} aside as a backup first (cp -a ${abs} ${abs}.bak); then restore an earlier backup into ${abs}, or start fresh by moving it away (mv ${abs} ${abs}.broken), which loses the history it held${recovery ? `. ${recovery}` : ''}`,
    { dataDir: abs, cause: String((cause as Error)?.message ?? cause) },
  )
}

async function migrate(db: Db): Promise<void> {
  await db.execute(sql`CREATE TABLE IF NOT EXISTS kiln_migrations (id integer PRIMARY KEY, applied_at bigint NOT NULL)`)
  const rows = await db.execute<{ id: number }>(sql`SELECT id FROM kiln_migrations`)
  const done = new Set(resultRows<{ id: number }>(rows).map((r) => Number(r.id)))
  for (const m of MIGRATIONS) {
    if (done.has(m.id)) continue
    await db.transaction(async (tx) => {
      // One statement per query: the extended protocol refuses several in one.
      for (const statement of m.sql
        .split(/;\s*\n/)
        .map((x) => x.trim().replace(/;$/, ''))
        .filter(Boolean)) {
        await tx.execute(sql.raw(statement))
      }
      await tx.execute(sql`INSERT INTO kiln_migrations (id, applied_at) VALUES (${m.id}, ${Date.now()})`)
    })
  }
}

/** node-postgres and PGlite return rows under different shapes from `execute`. */
export function resultRows<T>(result: unknown): T[] {
  if (Array.isArray(result)) return result as T[]
  return ((result as { rows?: T[] }).rows ?? []) as T[]
}
