import { mkdirSync } from 'node:fs'
import { PGlite } from '@electric-sql/pglite'
import { sql } from 'drizzle-orm'
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core'
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite'
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres'
import pg from 'pg'
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
}

export interface DbHandle {
  db: Db
  kind: 'pglite' | 'postgres'
  close(): Promise<void>
}

export async function openDb(init: DbInit = {}): Promise<DbHandle> {
  let handle: DbHandle
  if (init.databaseUrl) {
    const pool = new pg.Pool({ connectionString: init.databaseUrl, max: 10 })
    // An idle connection dropped by the server (restart, failover) must not crash the process;
    // the pool opens a new one on the next query.
    pool.on('error', (err) => init.onError?.(err))
    handle = { db: drizzlePg(pool, { schema }) as unknown as Db, kind: 'postgres', close: () => pool.end() }
  } else {
    if (init.dataDir) mkdirSync(init.dataDir, { recursive: true })
    const client = new PGlite(init.dataDir)
    await client.waitReady
    handle = { db: drizzlePglite(client, { schema }) as unknown as Db, kind: 'pglite', close: () => client.close() }
  }
  await migrate(handle.db)
  return handle
}

async function migrate(db: Db): Promise<void> {
  await db.execute(sql`CREATE TABLE IF NOT EXISTS kiln_migrations (id integer PRIMARY KEY, applied_at bigint NOT NULL)`)
  const rows = await db.execute<{ id: number }>(sql`SELECT id FROM kiln_migrations`)
  const done = new Set(resultRows<{ id: number }>(rows).map((r) => Number(r.id)))
  for (const m of MIGRATIONS) {
    if (done.has(m.id)) continue
    await db.transaction(async (tx) => {
      // One statement per query: the extended protocol refuses several in one.
      for (const statement of m.sql.split(/;\s*\n/).map((x) => x.trim().replace(/;$/, '')).filter(Boolean)) {
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
