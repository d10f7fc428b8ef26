import fc from 'fast-check'
import { LAMPORTS_PER_SOL, PublicKey } from '@solana/web3.js'
import { MULTISIG_SIZE } from '@solana/spl-token'
import { Identity, randomHex, type Address } from '@kiln/protocol'
import { describe, expect, it } from 'vitest'
import { cosignSettlement, createEscrow, lockFunds, planSettlement, settleOnce, tokenBalance } from '../src/index.ts'
import { useDevchain } from './devchain.ts'

/** Solana's fee per signature (LiteSVM's default, as on every cluster today). */
const FEE = 5_000
const LOCK = 1_000

/**
 * What a job the client abandons costs the marketplace: every placement names a vault, and
 * the placement lapses when the client does not lock it. Over any sequence of placements (on
 * either of two providers), lapses, locks and settlements, no vault is left open and the
 * arbiter's lamports go only to fees and one multisig per (client, provider) pair: nothing to
 * vault rent. The client's lock pays a vault's rent and its settlement gives it back.
 */
const Op = fc.constantFrom('place0', 'place1', 'lapse', 'lock', 'settle')

describe('vault rent over placements and lapses on a real devchain', () => {
  const dc = useDevchain()
  const lamports = (a: Address) => dc.conn.getBalance(new PublicKey(a), 'confirmed')

  it('leaves no vault open and no arbiter lamports in rent, whatever the client does', async () => {
    const { chain, conn, mint } = dc
    const multisigRent = await conn.getMinimumBalanceForRentExemption(MULTISIG_SIZE)
    await fc.assert(
      fc.asyncProperty(fc.array(Op, { minLength: 1, maxLength: 14 }), async (ops) => {
        const [arbiter, client] = [Identity.generate(), Identity.generate()]
        const providers = [Identity.generate(), Identity.generate()]
        await chain.fund(arbiter.address, { lamports: LAMPORTS_PER_SOL })
        await chain.fund(client.address, { lamports: LAMPORTS_PER_SOL, tokens: 100 * LOCK })
        for (const p of providers) await chain.fund(p.address, { lamports: LAMPORTS_PER_SOL })
        const escrow = createEscrow({ connection: conn, arbiter, mint })
        const jobId = `job_${randomHex(8)}`
        const start = {
          arbiter: await lamports(arbiter.address),
          client: await lamports(client.address),
          tokens: await tokenBalance(conn, mint, client.address),
        }

        const vaults: Address[] = []
        const pairs = new Set<number>()
        let attempt = 0
        let current: { escrowId: string; provider: Identity; vault: Address; locked: boolean } | undefined
        let locks = 0
        let settlements = 0

        const settle = async (): Promise<void> => {
          if (!current?.locked) return
          const plan = planSettlement({
            lock: LOCK,
            bond: 0,
            pricePerHour: 3_600,
            containerSeconds: 0,
            outcome: 'failed_provider',
            feeBps: 0,
          })
          const provider = current.provider
          const r = await settleOnce({
            escrow,
            plan,
            job: { jobId: current.escrowId, client: client.address, provider: provider.address },
            cosign: async ({ tx, expected }) =>
              cosignSettlement({ tx, signer: provider, expect: { vault: expected.vault, mint } }),
          })
          expect(r.status).toBe('settled')
          settlements++
          current = undefined
        }

        for (const op of ops) {
          if (op === 'place0' || op === 'place1') {
            if (current) continue
            const i = op === 'place0' ? 0 : 1
            const provider = providers[i] as Identity
            const escrowId = `${jobId}a${++attempt}`
            const { vault } = await escrow.prepareVault({
              jobId: escrowId,
              client: client.address,
              provider: provider.address,
            })
            pairs.add(i)
            vaults.push(vault)
            current = { escrowId, provider, vault, locked: false }
          } else if (op === 'lapse') {
            // The lock window closed without a lock: the coordinator only forgets the placement.
            if (current && !current.locked) current = undefined
          } else if (op === 'lock') {
            if (!current || current.locked) continue
            await lockFunds({
              connection: conn,
              from: client,
              amount: LOCK,
              jobId: current.escrowId,
              mint,
              vault: current.vault,
              client: client.address,
              provider: current.provider.address,
              arbiter: arbiter.address,
            })
            current.locked = true
            locks++
          } else {
            await settle()
          }
        }
        await settle()

        const open = await conn.getMultipleAccountsInfo(
          vaults.map((v) => new PublicKey(v)),
          'confirmed',
        )
        expect(open.filter((a) => a !== null)).toHaveLength(0)
        // One multisig per pair (it can never be closed), one fee for it, two signatures per settlement.
        expect(start.arbiter - (await lamports(arbiter.address))).toBe(
          pairs.size * (multisigRent + FEE) + settlements * 2 * FEE,
        )
        // The client paid each lock's fee; every vault's rent came back to it.
        expect(start.client - (await lamports(client.address))).toBe(locks * FEE)
        expect(await tokenBalance(conn, mint, client.address)).toBe(start.tokens)
      }),
      { numRuns: 12 },
    )
  })
})
