/**
 * `npm run bench:settlement`: on the devchain, N jobs go through the escrow as the
 * coordinator runs them (vault, the client's lock, the provider's bond in the same vault),
 * then each is settled the moment it is verified: the on-chain check, build, the provider's
 * co-signature and submission to confirmation. Prints the transactions each step sends and
 * how long settlement takes from "verified" to confirmed.
 */
import { Connection, LAMPORTS_PER_SOL, Transaction, type SendOptions } from '@solana/web3.js'
import { startDevchain } from '@kiln/devchain'
import { cosignSettlement, createEscrow, lockFunds, planSettlement, settleOnce } from '@kiln/escrow'
import { addressFromPublicKey, Identity, randomHex, type Address } from '@kiln/protocol'

const JOBS = Number(process.env.BENCH_JOBS ?? 30)
const LOCK = 2_000_000
const BOND = 1_000_000
const PRICE_PER_HOUR = 3_600_000
const FEE_BPS = 250
type Step = 'vault' | 'lock' | 'bond' | 'settle'
const STEPS: Step[] = ['vault', 'lock', 'bond', 'settle']

/** Counts distinct transactions (by signature): a re-broadcast of the same one is not another. */
class CountingConnection extends Connection {
  step: Step = 'vault'
  readonly sent = new Map<Step, Set<string>>(STEPS.map((s) => [s, new Set()]))
  override async sendRawTransaction(raw: Buffer | Uint8Array | number[], options?: SendOptions): Promise<string> {
    const sig = Transaction.from(Buffer.from(raw as Uint8Array)).signature
    if (sig) this.sent.get(this.step)?.add(addressFromPublicKey(sig))
    return super.sendRawTransaction(raw, options)
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN
const out = (s: string) => process.stdout.write(`${s}\n`)

const chain = await startDevchain({ port: 0 })
const times = new Map<Step, number[]>(STEPS.map((s) => [s, []]))
try {
  const conn = new CountingConnection(chain.rpcUrl, 'confirmed')
  const mint = chain.mint as Address
  const [arbiter, client, provider] = [Identity.generate(), Identity.generate(), Identity.generate()]
  await chain.fund(arbiter.address, { lamports: 10 * LAMPORTS_PER_SOL })
  await chain.fund(client.address, { lamports: LAMPORTS_PER_SOL, tokens: LOCK * JOBS })
  await chain.fund(provider.address, { lamports: LAMPORTS_PER_SOL, tokens: BOND * JOBS })
  const escrow = createEscrow({ connection: conn, arbiter, mint })
  const timed = async <T>(step: Step, fn: () => Promise<T>): Promise<T> => {
    conn.step = step
    const t = performance.now()
    const r = await fn()
    times.get(step)?.push(performance.now() - t)
    return r
  }

  for (let i = 0; i < JOBS; i++) {
    const job = { jobId: `job_${randomHex(8)}`, client: client.address, provider: provider.address }
    const { vault } = await timed('vault', () => escrow.prepareVault(job))
    const ref = { ...job, mint, vault, arbiter: arbiter.address }
    await timed('lock', () => lockFunds({ connection: conn, from: client, amount: LOCK, ...ref }))
    await timed('bond', () => lockFunds({ connection: conn, from: provider, amount: BOND, ...ref }))
    // The run and its verification happen here; from "verified" the clock runs to confirmation.
    const result = await timed('settle', () => {
      const plan = planSettlement({
        lock: LOCK,
        bond: BOND,
        pricePerHour: PRICE_PER_HOUR,
        containerSeconds: 40 + i,
        outcome: 'verified',
        feeBps: FEE_BPS,
      })
      return settleOnce({
        escrow,
        job,
        plan,
        cosign: async ({ tx, expected, minPayout }) =>
          cosignSettlement({
            tx,
            signer: provider,
            expect: { vault: expected.vault, mint, minPayout: { to: provider.address, amount: minPayout } },
          }),
      })
    })
    if (result.status !== 'settled') throw new Error(`job ${job.jobId} did not settle: ${result.status}`)
  }

  out(`${JOBS} jobs on the devchain: lock ${LOCK / 1e6}, bond ${BOND / 1e6}, fee ${FEE_BPS / 100}%\n`)
  out(`${'step'.padEnd(34)}${'tx/job'.padStart(8)}${'median ms'.padStart(12)}${'max ms'.padStart(10)}`)
  const label: Record<Step, string> = {
    vault: 'vault (+ multisig on first job)',
    lock: "client's lock",
    bond: "provider's bond",
    settle: 'settle: verified → confirmed',
  }
  let total = 0
  for (const s of STEPS) {
    const n = conn.sent.get(s)?.size ?? 0
    total += n
    const ts = times.get(s) ?? []
    out(
      `${label[s].padEnd(34)}${(n / JOBS).toFixed(2).padStart(8)}${median(ts).toFixed(1).padStart(12)}${Math.max(...ts)
        .toFixed(1)
        .padStart(10)}`,
    )
  }
  out(`${'total'.padEnd(34)}${(total / JOBS).toFixed(2).padStart(8)}`)
  out(
    '\nsettle = read the vault on chain, build, provider co-signs, submit, wait for confirmation (one transaction that pays provider, client and fee and closes the vault).',
  )
  out(
    `settlement: tx_per_job=${Number((total / JOBS).toFixed(2))} settle_ms=${median(times.get('settle') ?? []).toFixed(0)}`,
  )
} finally {
  await chain.stop()
}
