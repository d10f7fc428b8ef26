import { createHash } from 'node:crypto'
import { TOKEN_PROGRAM_ID } from '@solana/spl-token'
import { PublicKey } from '@solana/web3.js'
import {
  amount as amountSchema,
  assertIsAddress,
  jobId as jobIdSchema,
  KilnError,
  parseOrThrow,
  sha256Hex,
  type Address,
} from '@kiln/protocol'

/** Two of the three parties must sign anything that moves escrowed funds. */
export const MULTISIG_THRESHOLD = 2

export interface Parties {
  client: Address
  provider: Address
  arbiter: Address
}

/**
 * Checks the three parties are valid and distinct. Distinct matters for safety: SPL Token
 * counts a multisig signer once per slot, so a key listed twice could sign twice and reach
 * the 2-of-3 threshold alone.
 */
export function assertParties(p: Parties): void {
  assertIsAddress(p.client, 'client')
  assertIsAddress(p.provider, 'provider')
  assertIsAddress(p.arbiter, 'arbiter')
  if (new Set([p.client, p.provider, p.arbiter]).size !== 3) {
    throw new KilnError('PAYLOAD_INVALID', 'client, provider and arbiter must be three different keys', {
      issues: [{ path: 'parties', message: 'two parties share a key', expected: 'three distinct addresses' }],
    })
  }
}

export function assertJobId(jobId: string): void {
  parseOrThrow(jobIdSchema, jobId, 'job id')
}

export function assertAmount(value: number, path = 'amount'): void {
  parseOrThrow(amountSchema, value, path)
}

/** Seeds fit the 32-character limit of createAccountWithSeed; 128 bits of sha256 each. */
export function multisigSeed(client: Address, provider: Address): string {
  return sha256Hex(`kiln/multisig/${client}/${provider}`).slice(0, 32)
}

/** The arbiter is in the seed: the same escrow id at two marketplaces is two vaults. */
export function vaultSeed(arbiter: Address, jobId: string): string {
  return sha256Hex(`kiln/vault/2/${arbiter}/${jobId}`).slice(0, 32)
}

/** PublicKey.createWithSeed (owner = SPL Token), computed synchronously. */
export function tokenAccountWithSeed(base: Address, seed: string): Address {
  const digest = createHash('sha256')
    .update(new PublicKey(base).toBuffer())
    .update(seed)
    .update(TOKEN_PROGRAM_ID.toBuffer())
    .digest()
  return new PublicKey(digest).toBase58() as Address
}

/** The 2-of-3 multisig of a (client, provider, arbiter) triple: one per triple, reused. */
export function multisigAddress(arbiter: Address, client: Address, provider: Address): Address {
  assertParties({ client, provider, arbiter })
  return tokenAccountWithSeed(arbiter, multisigSeed(client, provider))
}

/**
 * A run's vault: a token account at an address only the client can create (its key is the
 * seed's base), in the very transaction that locks its payment. Nothing is created for a
 * placement the client never locks, so an abandoned job costs the arbiter no rent.
 */
export function vaultAddress(arbiter: Address, client: Address, jobId: string): Address {
  assertIsAddress(arbiter, 'arbiter')
  assertIsAddress(client, 'client')
  assertJobId(jobId)
  return tokenAccountWithSeed(client, vaultSeed(arbiter, jobId))
}

/** The multisig's signers, in the fixed order it is initialised with. */
export function multisigSigners(p: Parties): [Address, Address, Address] {
  return [p.client, p.provider, p.arbiter]
}
