import { recoverVault, type Party } from '@kiln/escrow'
import { isAddress, KilnError, loadIdentity, tokenUnitFor, type Address } from '@kiln/protocol'
import { Exit, money, type GlobalOpts, type Io } from '../context.ts'

export interface RecoverOpts extends GlobalOpts {
  vault: string
  /** The second signer's key file: the provider's, or the marketplace's arbiter.json. */
  cosigner: string
  rpc: string
  to: string
  pay: string[]
}

function party(value: string, path: string): Party {
  if (value === 'client' || value === 'provider' || isAddress(value)) return value as Party
  throw new KilnError('PAYLOAD_INVALID', `${path} is ${JSON.stringify(value)}`, {
    issues: [{ path, message: 'not a party', expected: 'client, provider or a base58 address' }],
  })
}

/** `--pay provider=2000000`: a payment out of the vault, in base units, before the rest goes to --to. */
function payment(value: string): { to: Party; amount: number } {
  const [who = '', units = ''] = value.split('=')
  const amount = Number(units)
  if (!/^\d+$/.test(units) || !Number.isSafeInteger(amount) || amount <= 0) {
    throw new KilnError('PAYLOAD_INVALID', `--pay ${value} has no amount`, {
      issues: [
        { path: 'pay', message: 'not <who>=<base units>', expected: 'like provider=2000000 (2.00 of the coin)' },
      ],
    })
  }
  return { to: party(who, 'pay'), amount }
}

/**
 * `kiln vault recover <vault> --cosigner <key file>`: moves a vault's tokens with two of its
 * three keys (yours, and the provider's or the marketplace's arbiter key), straight on the
 * ledger, for a vault the marketplace can no longer settle. The marketplace is not needed.
 */
export async function recover(o: RecoverOpts, io: Io): Promise<number> {
  if (!isAddress(o.vault))
    throw new KilnError('PAYLOAD_INVALID', `${o.vault} is not a vault address`, {
      issues: [{ path: 'vault', message: 'not a base58 address', expected: 'the vault address kiln status shows' }],
    })
  const pay = o.pay.map(payment)
  const r = await recoverVault({
    connection: o.rpc,
    vault: o.vault as Address,
    signers: [loadIdentity(o.keypair), loadIdentity(o.cosigner)],
    to: party(o.to, 'to'),
    pay,
  })
  if (o.json) {
    io.out(JSON.stringify({ ok: true, ...r }))
    return Exit.ok
  }
  const name = (a: Address) =>
    a === r.parties.client
      ? `client ${a}`
      : a === r.parties.provider
        ? `provider ${a}`
        : a === r.parties.arbiter
          ? `arbiter ${a}`
          : a
  io.out(`vault ${r.vault} emptied and closed in ${r.signature}`)
  for (const p of r.payouts) io.out(`  ${money(p.amount, tokenUnitFor(r.mint))} to ${name(p.to)}`)
  if (r.payouts.length === 0) io.out('  it held nothing')
  return Exit.ok
}
