import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { claimNonce, openDb, pruneNonces, usedNonces } from '../src/index.ts'

describe('used nonces (embedded PGlite)', () => {
  it('accepts a nonce once, still refuses it after the database is closed and opened again, and forgets it once expired', async () => {
    const dataDir = join(mkdtempSync(join(tmpdir(), 'kiln-nonces-')), 'db')
    const now = Date.now()
    const first = await openDb({ dataDir })
    try {
      expect(await claimNonce(first.db, 'alice', 'n1', now + 60_000, now)).toBe(true)
      expect(await claimNonce(first.db, 'alice', 'n1', now + 60_000, now)).toBe(false)
      // Another signer's same nonce is another request.
      expect(await claimNonce(first.db, 'bob', 'n1', now + 60_000, now)).toBe(true)
      expect(await claimNonce(first.db, 'alice', 'short', now + 1_000, now)).toBe(true)
    } finally {
      await first.close()
    }
    const again = await openDb({ dataDir })
    try {
      expect(await claimNonce(again.db, 'alice', 'n1', now + 60_000, now)).toBe(false)
      // Racing claims of one nonce: exactly one wins.
      const racing = await Promise.all(
        Array.from({ length: 5 }, () => claimNonce(again.db, 'carol', 'n2', now + 60_000, now)),
      )
      expect(racing.filter(Boolean)).toHaveLength(1)
      const later = now + 2_000
      expect(await claimNonce(again.db, 'alice', 'short', later + 1_000, later)).toBe(true)
      expect(await pruneNonces(again.db, now + 30_000)).toBe(1)
      expect(await pruneNonces(again.db, now + 61_000)).toBe(3)
      expect((await again.db.select().from(usedNonces)).map((r) => `${r.signer}:${r.nonce}`)).toEqual([])
    } finally {
      await again.close()
    }
  })
})
