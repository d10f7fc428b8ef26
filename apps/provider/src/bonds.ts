import type { Connection } from '@solana/web3.js'
import { checkLock, lockFunds, tokenBalance } from '@kiln/escrow'
import { KilnError, type Address, type Identity, type Lease } from '@kiln/protocol'
import type { Logger } from './log.ts'

export interface BondInit {
  connection: Connection
  identity: Identity
  mint: Address
  log: Logger
}

/**
 * The provider's stake in each run's vault. `start` refuses at once when the wallet cannot
 * cover the bond, then posts it while the container starts (off the critical path);
 * `settled` is awaited before the receipt goes out, because the marketplace pays no run
 * whose bond is missing; a bond that cannot be posted stops the run.
 */
export class Bonds {
  readonly #posting = new Map<string, Promise<void>>()
  readonly #init: BondInit

  constructor(init: BondInit) {
    this.#init = init
  }

  async start(lease: Lease): Promise<void> {
    if (lease.bond === 0) return
    const { connection, mint, identity } = this.#init
    const have = await tokenBalance(connection, mint, identity.address).catch(() => Infinity)
    if (have < lease.bond) {
      throw new KilnError(
        'INSUFFICIENT_FUNDS',
        `this provider holds ${have} and cannot post the lease's bond of ${lease.bond}`,
        { bond: lease.bond, available: have },
      )
    }
    const posting = this.#post(lease)
    posting.catch(() => {})
    this.#posting.set(lease.jobId, posting)
  }

  /** Stops the run if its bond cannot be posted. */
  watch(lease: Lease, abort: AbortController): void {
    this.#posting.get(lease.jobId)?.catch((e: unknown) => {
      this.#init.log.warn(
        { jobId: lease.jobId, err: (e as Error).message },
        'could not post the bond; stopping the run',
      )
      abort.abort(new Error(`could not post the bond: ${(e as Error).message}`))
    })
  }

  async settled(lease: Lease): Promise<void> {
    const posting = this.#posting.get(lease.jobId)
    this.#posting.delete(lease.jobId)
    await posting
  }

  forget(jobId: string): void {
    this.#posting.delete(jobId)
  }

  /** Posted once: a replayed lease finds it in the vault already. */
  async #post(lease: Lease): Promise<void> {
    const { connection, identity, log } = this.#init
    const ref = {
      jobId: lease.escrowId,
      mint: lease.mint,
      vault: lease.vault,
      client: lease.client,
      provider: lease.provider,
      arbiter: lease.arbiter,
    }
    if ((await checkLock(connection, { ...ref, amount: lease.lockAmount + lease.bond })).ok) return
    const signature = await lockFunds({ connection, from: identity, amount: lease.bond, ...ref })
    log.info({ jobId: lease.jobId, bond: lease.bond, signature }, "bond posted in the job's vault")
  }
}
