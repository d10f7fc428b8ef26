import { randomBytes } from 'node:crypto'
import {
  getTransactionDecoder,
  lamports as kitLamports,
  type Address as KitAddress,
  type Transaction as KitTransaction,
} from '@solana/kit'
import { VersionedTransaction } from '@solana/web3.js'
import bs58 from 'bs58'
import { FailedTransactionMetadata, LiteSVM, type TransactionMetadata } from 'litesvm'
import type { AccountState } from './accounts.ts'
import { SlotClock } from './clock.ts'
import { RpcError } from './rpc-error.ts'
import { landsOnChain, txErrorJson, txErrorMessage, type TxErrorJson } from './tx-errors.ts'

export const LAMPORTS_PER_SIGNATURE = 5000
const SLOTS_PER_EPOCH = 432_000
// Statuses are small and answer "did my tx land?"; full records serve getTransaction.
const MAX_STATUSES = 50_000
const MAX_TX_RECORDS = 2_000

export interface SignatureStatus {
  slot: number
  err: TxErrorJson | null
}
export interface TxRecord extends SignatureStatus {
  signature: string
  blockTime: number
  logs: string[]
  fee: number
  unitsConsumed: number
  preBalances: number[]
  postBalances: number[]
  /** base64 of the wire transaction. */
  tx: string
}
export interface CommitEvent extends SignatureStatus {
  signature: string
  accounts: string[]
}
export interface SimulationResult {
  err: TxErrorJson | null
  logs: string[]
  unitsConsumed: number
  returnData: { programId: string; data: [string, 'base64'] } | null
  accounts: (AccountState | undefined)[] | null
  replacementBlockhash?: { blockhash: string; lastValidBlockHeight: number }
}

/** What survives a restart (written as ledger.json). */
export interface LedgerState {
  format: 1
  genesisMs: number
  seed: string
  lastSlot: number
  meta: Record<string, string>
  /** base64 of LiteSVM's own full snapshot (accounts, sysvars, features). */
  svm: string
  statuses: [string, number, TxErrorJson | null][]
  txs: TxRecord[]
}

const sigFailure = (): RpcError => new RpcError(-32003, 'Transaction signature verification failure')

function preflightError(err: TxErrorJson, logs: string[], unitsConsumed = 0): RpcError {
  return new RpcError(-32002, `Transaction simulation failed: ${txErrorMessage(err)}`, {
    accounts: null,
    err,
    innerInstructions: null,
    logs,
    replacementBlockhash: null,
    returnData: null,
    unitsConsumed,
  })
}

interface Decoded {
  vtx: VersionedTransaction
  kit: KitTransaction
  signature: string
  keys: string[]
}

function decode(bytes: Uint8Array): Decoded {
  try {
    const vtx = VersionedTransaction.deserialize(bytes)
    const first = vtx.signatures[0]
    if (!first) throw new Error('no signatures')
    const keys = vtx.message.staticAccountKeys.map((k) => k.toBase58())
    return { vtx, kit: getTransactionDecoder().decode(bytes), signature: bs58.encode(first), keys }
  } catch (e) {
    throw new RpcError(-32602, `Invalid params: failed to deserialize transaction: ${(e as Error).message}`)
  }
}

/** LiteSVM plus what a node adds around it: time, blockhash window, signature statuses. */
export class Ledger {
  readonly clock: SlotClock
  readonly meta: Record<string, string>
  readonly #svm: LiteSVM
  readonly #seed: Uint8Array
  readonly #statuses = new Map<string, SignatureStatus>()
  readonly #txs = new Map<string, TxRecord>()
  readonly #listeners = new Set<(e: CommitEvent) => void>()

  constructor(state: LedgerState | undefined, ttlMs: number) {
    this.#seed = state ? Buffer.from(state.seed, 'hex') : randomBytes(32)
    this.clock = new SlotClock({
      genesisMs: state?.genesisMs ?? Date.now(),
      seed: this.#seed,
      ttlMs,
      lastSlot: state?.lastSlot,
    })
    this.meta = { ...state?.meta }
    // The blockhash window is ours (time based, many valid at once); LiteSVM only knows one.
    // Its history is off too: #statuses is the duplicate check and it persists.
    this.#svm = (state ? LiteSVM.fromBytes(Buffer.from(state.svm, 'base64')) : new LiteSVM())
      .withBlockhashCheck(false)
      .withTransactionHistory(0n)
      .withSigverify(true)
    for (const [sig, slot, err] of state?.statuses ?? []) this.#statuses.set(sig, { slot, err })
    for (const r of state?.txs ?? []) this.#txs.set(r.signature, r)
  }

  onCommit(fn: (e: CommitEvent) => void): () => void {
    this.#listeners.add(fn)
    return () => this.#listeners.delete(fn)
  }

  slot(): number {
    return this.clock.slot()
  }

  account(address: string): AccountState | undefined {
    const a = this.#svm.getAccount(address as KitAddress)
    if (!a.exists || a.lamports === 0n) return undefined
    return { lamports: a.lamports, owner: a.programAddress, data: a.data, executable: a.executable }
  }

  balance(address: string): bigint {
    return this.#svm.getBalance(address as KitAddress) ?? 0n
  }

  minimumBalance(dataLen: number): bigint {
    return this.#svm.minimumBalanceForRentExemption(BigInt(dataLen))
  }

  /** Transactions remembered (recent ones; older statuses are dropped past a cap). */
  transactionCount(): number {
    return this.#statuses.size
  }

  status(signature: string): SignatureStatus | undefined {
    return this.#statuses.get(signature)
  }

  transaction(signature: string): TxRecord | undefined {
    return this.#txs.get(signature)
  }

  /** Executes a wire transaction like `sendTransaction` (with preflight unless skipped). */
  send(bytes: Uint8Array, opts: { skipPreflight?: boolean } = {}): string {
    const d = decode(bytes)
    if (d.signature === bs58.encode(new Uint8Array(64))) throw sigFailure()
    if (this.#statuses.has(d.signature)) {
      if (opts.skipPreflight) return d.signature
      throw preflightError('AlreadyProcessed', [])
    }
    // Unlike a node, which silently drops it, say so even with skipPreflight: clearer in dev.
    if (this.clock.issuedSlot(d.vtx.message.recentBlockhash) === undefined)
      throw preflightError('BlockhashNotFound', [])
    const slot = this.#syncClock()
    if (!opts.skipPreflight) {
      const sim = this.#simulate(d.kit, true)
      if (sim.err === 'SignatureFailure') throw sigFailure()
      if (sim.err !== null) throw preflightError(sim.err, sim.meta.logs(), Number(sim.meta.computeUnitsConsumed()))
    }
    const pre = d.keys.map((k) => Number(this.balance(k)))
    let res: TransactionMetadata | FailedTransactionMetadata
    try {
      res = this.#svm.sendTransaction(d.kit)
    } catch {
      throw sigFailure()
    }
    const err = res instanceof FailedTransactionMetadata ? txErrorJson(res.err()) : null
    const meta = res instanceof FailedTransactionMetadata ? res.meta() : res
    if (err === 'SignatureFailure' || err === 'MissingSignatureForFee') throw sigFailure()
    if (err !== null && !landsOnChain(err)) throw preflightError(err, meta.logs())
    this.#record(
      {
        signature: d.signature,
        slot,
        err,
        blockTime: Math.floor(Date.now() / 1000),
        logs: meta.logs(),
        fee: LAMPORTS_PER_SIGNATURE * d.vtx.message.header.numRequiredSignatures,
        unitsConsumed: Number(meta.computeUnitsConsumed()),
        preBalances: pre,
        postBalances: d.keys.map((k) => Number(this.balance(k))),
        tx: Buffer.from(bytes).toString('base64'),
      },
      d.keys,
    )
    return d.signature
  }

  simulate(
    bytes: Uint8Array,
    opts: { sigVerify?: boolean; replaceRecentBlockhash?: boolean; accounts?: string[] } = {},
  ): SimulationResult {
    let d = decode(bytes)
    let replacementBlockhash: SimulationResult['replacementBlockhash']
    if (opts.replaceRecentBlockhash) {
      if (opts.sigVerify)
        throw new RpcError(-32602, 'Invalid params: sigVerify may not be used with replaceRecentBlockhash')
      const latest = this.clock.latest()
      d.vtx.message.recentBlockhash = latest.blockhash
      d = decode(d.vtx.serialize())
      replacementBlockhash = { blockhash: latest.blockhash, lastValidBlockHeight: latest.lastValidBlockHeight }
    } else if (this.clock.issuedSlot(d.vtx.message.recentBlockhash) === undefined) {
      return { err: 'BlockhashNotFound', logs: [], unitsConsumed: 0, returnData: null, accounts: null }
    }
    this.#syncClock()
    const sim = this.#simulate(d.kit, opts.sigVerify ?? false)
    const ret = sim.meta.returnData()
    const retData = ret.data()
    const accounts = opts.accounts?.map((a) => (sim.post.has(a) ? sim.post.get(a) : this.account(a))) ?? null
    return {
      err: sim.err,
      logs: sim.meta.logs(),
      unitsConsumed: Number(sim.meta.computeUnitsConsumed()),
      accounts,
      returnData: retData.length
        ? { programId: bs58.encode(ret.programId()), data: [Buffer.from(retData).toString('base64'), 'base64'] }
        : null,
      ...(replacementBlockhash ? { replacementBlockhash } : {}),
    }
  }

  airdrop(address: string, lamports: bigint): string {
    const slot = this.#syncClock()
    // LiteSVM signs airdrops with its latest blockhash: move it so two equal airdrops differ.
    this.#svm.expireBlockhash()
    const res = this.#svm.airdrop(address as KitAddress, kitLamports(lamports))
    if (!res || res instanceof FailedTransactionMetadata) {
      throw new RpcError(-32603, `airdrop failed: ${res ? txErrorMessage(txErrorJson(res.err())) : 'no result'}`)
    }
    const signature = bs58.encode(res.signature())
    this.#recordStatus(signature, { slot, err: null })
    this.#emit({ signature, slot, err: null, accounts: [address] })
    return signature
  }

  snapshot(): LedgerState {
    return {
      format: 1,
      genesisMs: this.clock.genesisMs,
      seed: Buffer.from(this.#seed).toString('hex'),
      lastSlot: this.clock.slot(),
      meta: { ...this.meta },
      svm: Buffer.from(this.#svm.toBytes()).toString('base64'),
      statuses: [...this.#statuses].map(([sig, s]) => [sig, s.slot, s.err]),
      txs: [...this.#txs.values()],
    }
  }

  #simulate(
    tx: KitTransaction,
    sigverify: boolean,
  ): { err: TxErrorJson | null; meta: TransactionMetadata; post: Map<string, AccountState | undefined> } {
    this.#svm.withSigverify(sigverify)
    try {
      const r = this.#svm.simulateTransaction(tx)
      if (r instanceof FailedTransactionMetadata) return { err: txErrorJson(r.err()), meta: r.meta(), post: new Map() }
      // An account emptied by the transaction is gone afterwards (undefined), not unchanged.
      const post = new Map<string, AccountState | undefined>()
      for (const a of r.postAccounts()) {
        post.set(
          a.address,
          a.lamports > 0n
            ? { lamports: a.lamports, owner: a.programAddress, data: new Uint8Array(a.data), executable: a.executable }
            : undefined,
        )
      }
      return { err: null, meta: r.meta(), post }
    } catch {
      // kit refuses a transaction with missing signatures before LiteSVM sees it.
      throw sigFailure()
    } finally {
      this.#svm.withSigverify(true)
    }
  }

  /** Points LiteSVM's Clock sysvar at our slot and the wall clock before executing. */
  #syncClock(): number {
    const slot = this.clock.slot()
    const c = this.#svm.getClock()
    c.slot = BigInt(slot)
    c.epoch = BigInt(Math.floor(slot / SLOTS_PER_EPOCH))
    c.unixTimestamp = BigInt(Math.floor(Date.now() / 1000))
    this.#svm.setClock(c)
    return slot
  }

  #record(r: TxRecord, accounts: string[]): void {
    this.#recordStatus(r.signature, { slot: r.slot, err: r.err })
    this.#txs.set(r.signature, r)
    if (this.#txs.size > MAX_TX_RECORDS) this.#txs.delete(this.#txs.keys().next().value as string)
    this.#emit({ signature: r.signature, slot: r.slot, err: r.err, accounts })
  }

  #recordStatus(signature: string, s: SignatureStatus): void {
    this.#statuses.set(signature, s)
    if (this.#statuses.size > MAX_STATUSES) this.#statuses.delete(this.#statuses.keys().next().value as string)
  }

  #emit(e: CommitEvent): void {
    for (const fn of this.#listeners) {
      try {
        fn(e)
      } catch {
        // A broken subscriber must not undo or block a committed transaction.
      }
    }
  }
}
