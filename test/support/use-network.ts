import { afterAll, beforeAll } from 'vitest'
import { Identity } from '@kiln/protocol'
import { startNetwork, type Network, type NetworkInit } from './network.ts'

export interface NetworkFixture {
  net: Network
  /** A client funded with SOL for fees and `funds` stablecoin base units. */
  client: Identity
  funds: number
}

/** A network for the enclosing describe block: started before its tests, stopped after. */
export function useNetwork(init: NetworkInit, funds = 5_000_000): NetworkFixture {
  const fx = { client: Identity.generate(), funds } as NetworkFixture
  beforeAll(async () => {
    fx.net = await startNetwork(init)
    await fx.net.fund(fx.client.address, { lamports: 5_000_000_000, tokens: funds })
  }, 240_000)
  afterAll(async () => {
    await fx.net?.stop()
  })
  return fx
}

/**
 * Provider 0 is the cheating harness (test/support/cheating-provider.ts, lying as `mode` says)
 * and the cheapest, so it gets a job's own run whenever it is free; the others are honest.
 */
export function cheaterAmong(
  providers: number,
  mode: 'alter' | 'bad-digest' | 'bad-signature',
  extra: Partial<NetworkInit> = {},
): NetworkInit {
  return {
    providers,
    providerPrice: (i) => (i === 0 ? 300_000 : 360_000),
    providerScript: (i) => (i === 0 ? 'test/support/cheating-provider.ts' : undefined),
    providerEnv: (i): Record<string, string> => (i === 0 ? { KILN_TEST_CHEAT: mode } : {}),
    ...extra,
  }
}
