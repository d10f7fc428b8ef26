import {
  createAssociatedTokenAccountIdempotentInstruction,
  createCloseAccountInstruction,
  createTransferCheckedInstruction,
  getAssociatedTokenAddressSync,
  unpackAccount,
  unpackMultisig,
  MULTISIG_SIZE,
  TOKEN_PROGRAM_ID,
} from '@solana/spl-token'
import { Connection, Transaction, type TransactionInstruction } from '@solana/web3.js'
import { assertIsAddress, KilnError, type Address, type Identity } from '@kiln/protocol'
import { COMMITMENT, keypairOf, mintDecimals, onChain, pk, sendAndConfirm, toSafeNumber } from './chain.ts'
import { MULTISIG_THRESHOLD } from './derive.ts'

export interface RecoverInit {
  /** A ledger connection, or its JSON-RPC URL. */
  connection: Connection | string
  vault: Address
  /** Two of the vault's three keys (client, provider, arbiter), in any order; the first pays the fee. */
  signers: [Identity, Identity]
  /** Where the tokens go: the client (a refund), the provider (a release) or any address. */
  to: Party
  /** Paid first, in base units (a provider's bond back, say); the rest goes to `to`. */
  pay?: { to: Party; amount: number }[]
}

export type Party = 'client' | 'provider' | Address

export interface Recovered {
  signature: string
  vault: Address
  /** Who got what, in base units. */
  payouts: { to: Address; amount: number }[]
  /** The vault's signers as its multisig lists them. */
  parties: { client: Address; provider: Address; arbiter: Address }
  /** The vault's token: what the amounts are counted in. */
  mint: Address
}

/**
 * Moves everything in a vault to one party and closes it (its rent back to the client), signed
 * by two of its three keys, without the marketplace: for a vault whose job the marketplace
 * lost (a database that no longer opens) or will not settle. Reads the vault and its multisig
 * from the chain, so nothing but the vault's address is needed; the SPL Token program itself
 * refuses it unless two of the multisig's keys sign.
 */
export async function recoverVault(init: RecoverInit): Promise<Recovered> {
  assertIsAddress(init.vault, 'vault')
  const connection = typeof init.connection === 'string' ? new Connection(init.connection, COMMITMENT) : init.connection
  const info = await onChain('reading the vault', () => connection.getAccountInfo(pk(init.vault), COMMITMENT))
  if (!info)
    throw new KilnError(
      'ESCROW_NOT_FUNDED',
      `there is no vault at ${init.vault}: it was settled already (a settled vault is closed) or never locked`,
      { vault: init.vault },
    )
  if (!info.owner.equals(TOKEN_PROGRAM_ID))
    throw new KilnError('ESCROW_WRONG_ACCOUNT', `${init.vault} is not an SPL Token account`, { vault: init.vault })
  const account = unpackAccount(pk(init.vault), info)
  const multisig = account.owner
  const m = await onChain('reading the multisig', () => connection.getAccountInfo(multisig, COMMITMENT))
  if (!m || !m.owner.equals(TOKEN_PROGRAM_ID) || m.data.length !== MULTISIG_SIZE) {
    throw new KilnError(
      'ESCROW_WRONG_ACCOUNT',
      `${init.vault} is not a Kiln vault: its owner ${multisig.toBase58()} is not an SPL Token multisig`,
      { vault: init.vault },
    )
  }
  const ms = unpackMultisig(multisig, m)
  const [client, provider, arbiter] = [ms.signer1, ms.signer2, ms.signer3].map((s) => s.toBase58() as Address) as [
    Address,
    Address,
    Address,
  ]
  const parties = { client, provider, arbiter }
  if (ms.m !== MULTISIG_THRESHOLD || ms.n !== 3)
    throw new KilnError(
      'ESCROW_WRONG_ACCOUNT',
      `${init.vault}'s multisig is ${ms.m}-of-${ms.n}, not Kiln's ${MULTISIG_THRESHOLD}-of-3`,
      { vault: init.vault },
    )
  const [a, b] = init.signers
  for (const [i, s] of init.signers.entries()) {
    if (![client, provider, arbiter].includes(s.address)) {
      throw new KilnError(
        'PAYLOAD_INVALID',
        `key ${s.address} is not one of vault ${init.vault}'s signers (client ${client}, provider ${provider}, arbiter ${arbiter})`,
        {
          issues: [
            {
              path: `signers.${i}`,
              message: 'not a signer of this vault',
              expected: "the client's, the provider's or the arbiter's key file",
            },
          ],
          vault: init.vault,
        },
      )
    }
  }
  if (a.address === b.address) {
    throw new KilnError(
      'PAYLOAD_INVALID',
      `both keys are ${a.address}: two different signers of the vault are needed`,
      { issues: [{ path: 'signers.1', message: 'the same key twice', expected: "a second signer's key file" }] },
    )
  }
  const resolve = (who: Party, path: string): Address => {
    const address = who === 'client' ? client : who === 'provider' ? provider : who
    assertIsAddress(address, path)
    return address
  }
  const balance = toSafeNumber(account.amount, 'vault balance')
  const payouts = (init.pay ?? []).map((p, i) => ({ to: resolve(p.to, `pay.${i}.to`), amount: p.amount }))
  const paid = payouts.reduce((n, p) => n + p.amount, 0)
  if (payouts.some((p) => !Number.isSafeInteger(p.amount) || p.amount <= 0) || paid > balance) {
    throw new KilnError('PAYLOAD_INVALID', `the payments total ${paid} but vault ${init.vault} holds ${balance}`, {
      issues: [
        {
          path: 'pay',
          message: 'each payment must be a positive whole number of base units, together at most the vault balance',
          expected: `at most ${balance} in all`,
        },
      ],
    })
  }
  payouts.push({ to: resolve(init.to, 'to'), amount: balance - paid })
  const mint = account.mint
  const payer = pk(a.address)
  const signers = [pk(a.address), pk(b.address)]
  const ixs: TransactionInstruction[] = []
  const decimals = await mintDecimals(connection, mint.toBase58() as Address)
  for (const p of payouts.filter((x) => x.amount > 0)) {
    const ata = getAssociatedTokenAddressSync(mint, pk(p.to), true)
    ixs.push(createAssociatedTokenAccountIdempotentInstruction(payer, ata, pk(p.to), mint))
    ixs.push(createTransferCheckedInstruction(pk(init.vault), mint, ata, multisig, BigInt(p.amount), decimals, signers))
  }
  ixs.push(createCloseAccountInstruction(pk(init.vault), pk(client), multisig, signers))
  const { blockhash } = await onChain('reading a blockhash', () => connection.getLatestBlockhash(COMMITMENT))
  const tx = new Transaction({ feePayer: payer, recentBlockhash: blockhash }).add(...ixs)
  tx.sign(keypairOf(a), keypairOf(b))
  return {
    signature: await sendAndConfirm(connection, tx),
    vault: init.vault,
    payouts: payouts.filter((p) => p.amount > 0),
    parties,
    mint: mint.toBase58() as Address,
  }
}
