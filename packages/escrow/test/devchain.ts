import { Connection } from '@solana/web3.js'
import { startDevchain, type Devchain } from '@kiln/devchain'
import type { Address } from '@kiln/protocol'
import { afterAll, beforeAll } from 'vitest'

export interface ChainFixture {
  chain: Devchain
  conn: Connection
  mint: Address
}

/** A real devchain (LiteSVM behind JSON-RPC) for the enclosing describe block. */
export function useDevchain(): ChainFixture {
  const fx = {} as ChainFixture
  beforeAll(async () => {
    fx.chain = await startDevchain({ port: 0 })
    fx.conn = new Connection(fx.chain.rpcUrl, 'confirmed')
    fx.mint = fx.chain.mint as Address
  })
  afterAll(async () => {
    await fx.chain?.stop()
  })
  return fx
}
