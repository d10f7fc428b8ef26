import fc from 'fast-check'
import { Connection, LAMPORTS_PER_SOL, PublicKey } from '@solana/web3.js'
import { startDevchain, type Devchain } from '@kiln/devchain'
import { Identity, isKilnError, randomHex, type Address } from '@kiln/protocol'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  cosignSettlement,
  createEscrow,
  lockFunds,
  planSettlement,
  SETTLEMENT_OUTCOMES,
  settleOnce,
  tokenBalance,
  type Escrow,
  type SettleInit,
  type SettlementPlan,
} from '../src/index.ts'

/**
 * Properties of settlement against the real escrow on a real ledger: random jobs, their
 * steps interleaved at random (vault, lock, bond, settle, retries), checked after every step
 * against a model of who should hold what.
 */
const MODES = ['plain', 'crash_then_resume', 'race'] as const
const RETRIES = ['again', 'pending', 'resubmit', 'rebuild'] as const
const jobArb = fc.record({
  lock: fc.integer({ min: 1, max: 5_000_000 }),
  bond: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 2_000_000 })),
  pricePerHour: fc.integer({ min: 1, max: 20_000_000 }),
  containerSeconds: fc.integer({ min: 0, max: 3_600 }),
  outcome: fc.constantFrom(...SETTLEMENT_OUTCOMES),
  feeBps: fc.integer({ min: 0, max: 1_000 }),
  mode: fc.constantFrom(...MODES),
  retries: fc.array(fc.constantFrom(...RETRIES), { maxLength: 2 }),
})
type JobCase = typeof jobArb extends fc.Arbitrary<infer T> ? T : never
type Step = 'vault' | 'lock' | 'bond' | 'settle' | (typeof RETRIES)[number]

describe('settlement properties on a real devchain', () => {
  let chain: Devchain
  let conn: Connection
  let mint: Address

  beforeAll(async () => {
    chain = await startDevchain({ port: 0 })
    conn = new Connection(chain.rpcUrl, 'confirmed')
    mint = chain.mint as Address
  })
  afterAll(async () => {
    await chain.stop()
  })

  it('conserves tokens, leaves no vault behind and never pays twice, over random sequences', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(jobArb, { minLength: 1, maxLength: 3 }),
        fc.array(fc.nat(), { minLength: 16, maxLength: 16 }),
        async (cases, picks) => {
          const world = await newWorld(cases)
          const queues: Step[][] = cases.map((c) => [
            'vault',
            'lock',
            ...(c.bond > 0 ? ['bond' as const] : []),
            'settle',
            ...c.retries,
          ])
          const run = async (i: number): Promise<void> => {
            await world.step(i, (queues[i] as Step[]).shift() as Step)
            await world.checkBalances()
          }
          for (const pick of picks) {
            const open = queues.flatMap((q, i) => (q.length ? [i] : []))
            if (open.length) await run(open[pick % open.length] as number)
          }
          for (const [i, q] of queues.entries()) while (q.length) await run(i)
          await world.checkFinal()
        },
      ),
      { numRuns: 15 },
    )
  })

  it('refuses before sending when the vault holds less than the plan pays out (bond never posted)', async () => {
    const [arbiter, client, provider] = [Identity.generate(), Identity.generate(), Identity.generate()]
    await chain.fund(arbiter.address, { lamports: LAMPORTS_PER_SOL })
    await chain.fund(client.address, { lamports: LAMPORTS_PER_SOL, tokens: 1_000 })
    const escrow = createEscrow({ connection: conn, arbiter, mint })
    const job = { jobId: `job_${randomHex(8)}`, client: client.address, provider: provider.address }
    const { vault } = await escrow.prepareVault(job)
    await lockFunds({ connection: conn, from: client, amount: 1_000, mint, vault, ...job, arbiter: arbiter.address })
    const plan = planSettlement({
      lock: 1_000,
      bond: 500,
      pricePerHour: 3_600,
      containerSeconds: 10,
      outcome: 'caught',
      feeBps: 0,
    })
    let cosigned = false
    const attempt = settleOnce({
      escrow,
      job,
      plan,
      cosign: async () => {
        cosigned = true
        return ''
      },
    })
    await expect(attempt).rejects.toThrowError(
      expect.objectContaining({
        kind: 'ESCROW_NOT_FUNDED',
        message: expect.stringMatching(
          /holds 0\.001 tUSDC, the plan pays out 0\.0015 tUSDC \(is the bond missing\?\)$/,
        ),
      }),
    )
    expect(cosigned).toBe(false)
    expect((await escrow.settlementStatus(job)).balance).toBe(1_000)
  })

  /** One client, provider and arbiter per run, funded for exactly these jobs; a model of balances. */
  async function newWorld(cases: JobCase[]) {
    const [arbiter, client, provider] = [Identity.generate(), Identity.generate(), Identity.generate()]
    const locks = cases.reduce((n, c) => n + c.lock, 0)
    const bonds = cases.reduce((n, c) => n + c.bond, 0)
    await chain.fund(arbiter.address, { lamports: 10 * LAMPORTS_PER_SOL })
    await chain.fund(client.address, { lamports: LAMPORTS_PER_SOL, tokens: locks })
    await chain.fund(provider.address, { lamports: LAMPORTS_PER_SOL, ...(bonds > 0 ? { tokens: bonds } : {}) })
    const escrow: Escrow = createEscrow({ connection: conn, arbiter, mint })
    const total = locks + bonds
    const model = new Map<Address, number>([
      [client.address, locks],
      [provider.address, bonds],
      [arbiter.address, 0],
    ])
    const jobs = cases.map((c) => ({
      c,
      jobId: `job_${randomHex(8)}`,
      vault: '' as Address,
      plan: planSettlement(c) as SettlementPlan,
      recorded: [] as string[],
      signatures: new Set<string>(),
    }))
    const parties = { client: client.address, provider: provider.address, arbiter: arbiter.address }
    const move = (from: Address | null, to: Address | null, n: number): void => {
      if (from) model.set(from, (model.get(from) ?? 0) - n)
      if (to) model.set(to, (model.get(to) ?? 0) + n)
    }
    const vaultHeld = new Map<string, number>()

    function settleInit(i: number, extra: Partial<SettleInit> = {}): SettleInit {
      const j = jobs[i] as (typeof jobs)[number]
      return {
        escrow,
        plan: j.plan,
        job: { jobId: j.jobId, client: client.address, provider: provider.address },
        cosign: async ({ tx, expected, cosigner, minPayout }) => {
          const signer = cosigner === 'client' ? client : provider
          return cosignSettlement({
            tx,
            signer,
            expect: { vault: expected.vault, mint, minPayout: { to: signer.address, amount: minPayout } },
          })
        },
        record: async ({ tx }) => {
          j.recorded.push(tx)
        },
        ...extra,
      }
    }
    function paid(i: number): void {
      const j = jobs[i] as (typeof jobs)[number]
      vaultHeld.delete(j.jobId)
      move(null, client.address, j.plan.client)
      move(null, provider.address, j.plan.provider)
      move(null, arbiter.address, j.plan.arbiter)
    }

    async function step(i: number, s: Step): Promise<void> {
      const j = jobs[i] as (typeof jobs)[number]
      const ref = { jobId: j.jobId, mint, vault: j.vault, ...parties }
      switch (s) {
        case 'vault':
          j.vault = (
            await escrow.prepareVault({ jobId: j.jobId, client: client.address, provider: provider.address })
          ).vault
          return
        case 'lock':
        case 'bond': {
          const amount = s === 'lock' ? j.c.lock : j.c.bond
          await lockFunds({ connection: conn, from: s === 'lock' ? client : provider, amount, ...ref })
          move(s === 'lock' ? client.address : provider.address, null, amount)
          // The client's lock makes the vault: until then there is nothing to hold.
          vaultHeld.set(j.jobId, (vaultHeld.get(j.jobId) ?? 0) + amount)
          return
        }
        case 'settle':
          return settle(i)
        case 'again':
          expect(await settleOnce(settleInit(i))).toEqual({ status: 'already_settled', signature: null })
          return
        case 'pending': {
          // The recorded transaction already landed: re-sending it is the same settlement, not a second one.
          const r = await settleOnce(settleInit(i, { pending: j.recorded.at(-1) as string }))
          expect(r.status === 'already_settled' || j.signatures.has(r.signature)).toBe(true)
          return
        }
        case 'resubmit': {
          const sig = await escrow.submitSettlement(j.recorded.at(-1) as string).catch((e: unknown) => e)
          expect(typeof sig === 'string' ? j.signatures.has(sig) : isKilnError(sig, 'ESCROW_TX_REJECTED')).toBe(true)
          return
        }
        case 'rebuild':
          await expect(
            escrow.buildSettlement({
              jobId: j.jobId,
              client: client.address,
              provider: provider.address,
              cosigner: 'provider',
              payouts: [],
            }),
          ).rejects.toThrowError(expect.objectContaining({ kind: 'ESCROW_NOT_FUNDED' }))
          return
      }
    }

    async function settle(i: number): Promise<void> {
      const j = jobs[i] as (typeof jobs)[number]
      if (j.c.mode === 'crash_then_resume') {
        // Signed and recorded, then the coordinator dies before sending: nothing moves.
        await expect(
          settleOnce(
            settleInit(i, {
              record: async ({ tx }) => {
                j.recorded.push(tx)
                throw new Error('crash')
              },
            }),
          ),
        ).rejects.toThrow('crash')
        await checkBalances()
        const r = await settleOnce(settleInit(i, { pending: j.recorded.at(-1) as string }))
        expect(r.status).toBe('settled')
        if (r.status === 'settled') j.signatures.add(r.signature)
      } else if (j.c.mode === 'race') {
        const rs = await Promise.all([settleOnce(settleInit(i)), settleOnce(settleInit(i))])
        const sigs = new Set(rs.flatMap((r) => (r.status === 'settled' ? [r.signature] : [])))
        // Identical transactions share one signature; different ones cannot both land.
        expect(sigs.size).toBe(1)
        for (const s of sigs) j.signatures.add(s)
      } else {
        const r = await settleOnce(settleInit(i))
        expect(r).toMatchObject({ status: 'settled' })
        if (r.status === 'settled') j.signatures.add(r.signature)
      }
      paid(i)
      expect(await conn.getAccountInfo(new PublicKey(j.vault))).toBeNull()
      expect((await escrow.settlementStatus({ jobId: j.jobId, client: client.address })).exists).toBe(false)
    }

    async function checkBalances(): Promise<void> {
      let sum = 0
      for (const [who, want] of model) {
        const have = await tokenBalance(conn, mint, who)
        expect(
          have,
          `balance of ${who === client.address ? 'client' : who === provider.address ? 'provider' : 'arbiter'}`,
        ).toBe(want)
        sum += have
      }
      for (const [jobId, held] of vaultHeld) {
        const st = await escrow.settlementStatus({ jobId, client: client.address })
        expect(st.balance).toBe(held)
        sum += st.balance
      }
      expect(sum).toBe(total)
    }

    async function checkFinal(): Promise<void> {
      expect(vaultHeld.size).toBe(0)
      for (const j of jobs)
        expect((await escrow.settlementStatus({ jobId: j.jobId, client: client.address })).exists).toBe(false)
      await checkBalances()
    }

    return { step, checkBalances, checkFinal }
  }
})
