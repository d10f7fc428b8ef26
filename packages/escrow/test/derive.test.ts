import { TOKEN_PROGRAM_ID } from '@solana/spl-token'
import { PublicKey } from '@solana/web3.js'
import { Identity, type Address } from '@kiln/protocol'
import { describe, expect, it } from 'vitest'
import { multisigAddress, multisigSeed, vaultAddress, vaultSeed } from '../src/index.ts'

const [arbiter, client, provider] = [Identity.generate(), Identity.generate(), Identity.generate()].map(
  (i) => i.address,
) as [Address, Address, Address]

describe('escrow address derivation', () => {
  it('matches web3.js createWithSeed (owner = SPL Token; base = arbiter for the multisig, client for the vault)', async () => {
    const expected = await PublicKey.createWithSeed(
      new PublicKey(arbiter),
      multisigSeed(client, provider),
      TOKEN_PROGRAM_ID,
    )
    expect(multisigAddress(arbiter, client, provider)).toBe(expected.toBase58())
    const vault = await PublicKey.createWithSeed(
      new PublicKey(client),
      vaultSeed(arbiter, 'job_0123456789ab'),
      TOKEN_PROGRAM_ID,
    )
    expect(vaultAddress(arbiter, client, 'job_0123456789ab')).toBe(vault.toBase58())
  })

  it('keeps seeds within the 32-character limit', () => {
    expect(multisigSeed(client, provider)).toHaveLength(32)
    expect(vaultSeed(arbiter, 'job_' + 'x'.repeat(40))).toHaveLength(32)
  })

  it('gives one multisig per triple and one vault per job', () => {
    expect(multisigAddress(arbiter, client, provider)).toBe(multisigAddress(arbiter, client, provider))
    expect(multisigAddress(arbiter, provider, client)).not.toBe(multisigAddress(arbiter, client, provider))
    expect(multisigAddress(Identity.generate().address, client, provider)).not.toBe(
      multisigAddress(arbiter, client, provider),
    )
    expect(vaultAddress(arbiter, client, 'job_aaaaaaaaaa')).not.toBe(vaultAddress(arbiter, client, 'job_aaaaaaaaab'))
    // One escrow id at two marketplaces, or of two clients, is two vaults.
    expect(vaultAddress(provider, client, 'job_aaaaaaaaaa')).not.toBe(vaultAddress(arbiter, client, 'job_aaaaaaaaaa'))
    expect(vaultAddress(arbiter, provider, 'job_aaaaaaaaaa')).not.toBe(vaultAddress(arbiter, client, 'job_aaaaaaaaaa'))
  })

  it('refuses a triple where one key plays two roles (it could sign twice)', () => {
    expect(() => multisigAddress(arbiter, client, client)).toThrowError(
      expect.objectContaining({ kind: 'PAYLOAD_INVALID' }),
    )
    expect(() => multisigAddress(arbiter, arbiter, provider)).toThrowError(
      expect.objectContaining({ kind: 'PAYLOAD_INVALID' }),
    )
  })

  it('refuses malformed job ids and addresses', () => {
    expect(() => vaultAddress(arbiter, client, 'not a job')).toThrowError(
      expect.objectContaining({ kind: 'PAYLOAD_INVALID' }),
    )
    expect(() => vaultAddress('nope' as Address, client, 'job_0123456789ab')).toThrowError(
      expect.objectContaining({ kind: 'PAYLOAD_INVALID' }),
    )
    expect(() => vaultAddress(arbiter, 'nope' as Address, 'job_0123456789ab')).toThrowError(
      expect.objectContaining({ kind: 'PAYLOAD_INVALID' }),
    )
  })
})
