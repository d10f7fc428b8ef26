import { PublicKey, Transaction, type Connection } from '@solana/web3.js'
import { cosignSettlement, decodeSettlement, settlementSignature, type DecodedSettlement } from '@kiln/escrow'
import type { Channel } from '@kiln/mesh'
import {
  Kind,
  KilnError,
  open,
  SettleRequest,
  type Address,
  type Identity,
  type Lease,
  type NonceCache,
} from '@kiln/protocol'
import type { JobJournal } from './journal.ts'
import { toWire } from './job-stream.ts'
import type { Logger } from './log.ts'
import { owedTo } from './receipts.ts'

export interface SettleContext {
  identity: Identity
  marketplace: Address
  journal: JobJournal
  nonces: NonceCache
  log: Logger
  /** Whether a transaction (by signature) is on chain without error: a slash notice is believed only then. */
  landed: (signature: string) => Promise<boolean>
}

/** Asks the ledger, a few times over a few seconds (a notice may outrun the RPC node we read). */
export async function landedOn(connection: Connection, signature: string, tries = 5, gapMs = 1000): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    const st = (await connection.getSignatureStatus(signature, { searchTransactionHistory: true }).catch(() => null))
      ?.value
    if (st && st.err === null && st.confirmationStatus !== 'processed') return true
    if (st?.err) return false
    if (i + 1 < tries) await new Promise((r) => setTimeout(r, gapMs))
  }
  return false
}

// Fixed program ids (the same on every cluster): enough to find our token account without spl-token.
const TOKEN_PROGRAM = new PublicKey('TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA')
const ATA_PROGRAM = new PublicKey('ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL')

function tokenAccountOf(owner: Address, mint: Address): string {
  return PublicKey.findProgramAddressSync(
    [new PublicKey(owner).toBuffer(), TOKEN_PROGRAM.toBuffer(), new PublicKey(mint).toBuffer()],
    ATA_PROGRAM,
  )[0].toBase58()
}

/**
 * The settle protocol: the marketplace asks us to co-sign a settlement of one of our leases.
 * We sign a release only if it pays us at least what our own record says we earned (less
 * the lease's fee) and our bond back, and a refund only when our record says we earned
 * nothing and it returns our bond. What we signed goes into the journal,
 * which is the earnings history the dashboard shows. A slash we do not sign: the notice of
 * one is recorded only when it settles our own lease's vault and is on chain.
 */
export async function serveSettle(ctx: SettleContext, ch: Channel): Promise<void> {
  const { identity, journal, log } = ctx
  try {
    const raw = (await ch.nextJson<{ envelope?: unknown }>(15_000))?.envelope
    const { payload } = open(raw, {
      kind: Kind.settleRequest,
      schema: SettleRequest,
      signer: ctx.marketplace,
      nonces: ctx.nonces,
    })
    const rec = journal.get(payload.jobId)
    if (!rec) throw new KilnError('SETTLEMENT_REFUSED', `no lease ${payload.jobId} on record`)
    if (payload.action === 'slash') {
      // Not a request: the client and arbiter already sent it. Two independent runs outvoted ours.
      const { payout, signature } = await checkSlash(ctx, payload.transaction, rec.lease)
      journal.update(payload.jobId, {
        settlement: { action: 'slash', toProvider: payout, bondReturned: 0, at: Date.now(), signature },
      })
      log.warn(
        { jobId: payload.jobId, bond: rec.lease.bond ?? 0, signature },
        'slashed: two independent runs of this job agree on another result; the bond went to the client',
      )
      await ch.sendJson({ ok: true, transaction: payload.transaction })
      return
    }
    const { earned, owed } = owedTo(rec)
    if (payload.action === 'refund' && earned > 0)
      throw new KilnError('SETTLEMENT_REFUSED', `refund asked, but our receipt earned ${earned}`)
    // A refund must still give our bond back; a release must pay the work (less the fee) and the bond.
    const expect = {
      vault: rec.lease.vault,
      mint: rec.lease.mint,
      ...(owed > 0 ? { minPayout: { to: identity.address, amount: owed } } : {}),
    }
    const transaction = cosignSettlement({ tx: payload.transaction, signer: identity, expect })
    const payout = payoutTo(transaction, rec.lease.vault, rec.lease.mint, identity.address)
    // What we earned is the payout less our own bond coming back.
    const bond = Math.min(payout, rec.lease.bond ?? 0)
    const toProvider = payout - bond
    await ch.sendJson({ ok: true, transaction })
    journal.update(payload.jobId, {
      settlement: { action: payload.action, toProvider, bondReturned: bond, at: Date.now() },
    })
    log.info({ jobId: payload.jobId, action: payload.action, earned, toProvider }, 'settlement co-signed')
  } catch (e) {
    const error = toWire(e)
    log.warn({ code: error.code, err: error.message }, 'settlement refused')
    await ch.sendJson({ ok: false, error }).catch(() => {})
  }
}

/** A slash notice is a settlement of our lease's vault that is already on chain; anything else is refused. */
async function checkSlash(
  ctx: SettleContext,
  base64: string,
  lease: Lease,
): Promise<{ payout: number; signature: string }> {
  let tx: Transaction
  try {
    tx = Transaction.from(Buffer.from(base64, 'base64'))
  } catch {
    throw new KilnError('SETTLEMENT_REFUSED', 'slash notice carries no readable transaction')
  }
  const d = decodeSettlement(tx, { vault: lease.vault, mint: lease.mint })
  const signature = settlementSignature(base64)
  if (!(await ctx.landed(signature))) {
    throw new KilnError('SETTLEMENT_REFUSED', `slash notice names transaction ${signature}, which is not on chain`, {
      signature,
      vault: lease.vault,
    })
  }
  return { payout: paidIn(d, ctx.identity.address, lease.mint), signature }
}

/** What a decoded settlement pays to `owner`'s token account. */
function paidIn(d: DecodedSettlement, owner: Address, mint: Address): number {
  return Number(d.transfers.get(tokenAccountOf(owner, mint)) ?? 0n)
}

function payoutTo(base64: string, vault: Address, mint: Address, owner: Address): number {
  try {
    return paidIn(decodeSettlement(Transaction.from(Buffer.from(base64, 'base64')), { vault, mint }), owner, mint)
  } catch {
    return 0 // already checked by cosignSettlement; this is only the history's number
  }
}
