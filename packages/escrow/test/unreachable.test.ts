import { Connection } from '@solana/web3.js'
import { Identity, type Address } from '@kiln/protocol'
import { describe, expect, it } from 'vitest'
import { tokenBalance } from '../src/index.ts'

describe('escrow without a reachable chain', () => {
  it('says CHAIN_UNREACHABLE instead of a raw fetch error', async () => {
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    const conn = new Connection('http://127.0.0.1:1', { commitment: 'confirmed', disableRetryOnRateLimit: true })
    await expect(
      tokenBalance(conn, Identity.generate().address, Identity.generate().address as Address),
    ).rejects.toThrowError(expect.objectContaining({ kind: 'CHAIN_UNREACHABLE' }))
  })
})
