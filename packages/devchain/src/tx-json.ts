import { VersionedTransaction } from '@solana/web3.js'
import bs58 from 'bs58'
import type { TxRecord } from './ledger.ts'

/** A stored transaction in getTransaction's shape (`json` or `base64` encoding). */
export function transactionJson(r: TxRecord, encoding: 'json' | 'base64'): Record<string, unknown> {
  const bytes = Buffer.from(r.tx, 'base64')
  const tx = VersionedTransaction.deserialize(bytes)
  const m = tx.message
  const legacy = m.version === 'legacy'
  const transaction =
    encoding === 'base64'
      ? [r.tx, 'base64']
      : {
          signatures: tx.signatures.map((s) => bs58.encode(s)),
          message: {
            accountKeys: m.staticAccountKeys.map((k) => k.toBase58()),
            header: m.header,
            instructions: m.compiledInstructions.map((ix) => ({
              programIdIndex: ix.programIdIndex,
              accounts: ix.accountKeyIndexes,
              data: bs58.encode(ix.data),
              stackHeight: null,
            })),
            recentBlockhash: m.recentBlockhash,
            ...(legacy
              ? {}
              : {
                  addressTableLookups: m.addressTableLookups.map((l) => ({
                    ...l,
                    accountKey: l.accountKey.toBase58(),
                  })),
                }),
          },
        }
  return {
    slot: r.slot,
    blockTime: r.blockTime,
    version: legacy ? 'legacy' : 0,
    transaction,
    meta: {
      err: r.err,
      status: r.err === null ? { Ok: null } : { Err: r.err },
      fee: r.fee,
      preBalances: r.preBalances,
      postBalances: r.postBalances,
      innerInstructions: [],
      logMessages: r.logs,
      preTokenBalances: [],
      postTokenBalances: [],
      rewards: [],
      loadedAddresses: { writable: [], readonly: [] },
      computeUnitsConsumed: r.unitsConsumed,
    },
  }
}
