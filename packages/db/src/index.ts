export * from './schema.ts'
export { openDb, resultRows, type Db, type DbHandle, type DbInit } from './open.ts'
export { claimNonce, pruneNonces } from './nonces.ts'
export { and, asc, desc, eq, gt, inArray, isNotNull, isNull, lt, or, sql } from 'drizzle-orm'
