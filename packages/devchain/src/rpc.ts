import { VersionedMessage } from '@solana/web3.js'
import bs58 from 'bs58'
import { isAddress, isKilnError, TOKEN_DECIMALS, type Identity } from '@kiln/protocol'
import {
  encodeAccount,
  mintDecimalsOf,
  parseEncoding,
  tokenAccountOf,
  tokenAmount,
  type DataSlice,
} from './accounts.ts'
import { fund } from './dev.ts'
import { LAMPORTS_PER_SIGNATURE, type Ledger } from './ledger.ts'
import { invalidParams, RpcError } from './rpc-error.ts'
import { transactionJson } from './tx-json.ts'

export interface RpcContext {
  ledger: Ledger
  mint: string
  mintAuthority: Identity
  /** Called after anything that changes state, so it gets persisted. */
  changed: () => void
}

type Handler = (p: unknown[], ctx: RpcContext) => unknown

const SLOTS_PER_EPOCH = 432_000
const MAX_KEYS = 100
const MAX_SIGNATURES = 256

function addr(p: unknown[], i: number): string {
  const v = p[i]
  if (!isAddress(v)) throw invalidParams(`param ${i} is not a base58 public key`)
  return v
}
function cfg(p: unknown[], i: number): Record<string, unknown> {
  const v = p[i]
  if (v === undefined || v === null) return {}
  if (typeof v !== 'object' || Array.isArray(v)) throw invalidParams(`param ${i} must be a config object`)
  return v as Record<string, unknown>
}
function uint(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    throw invalidParams(`${what} must be a non-negative integer`)
  return v
}
function strings(v: unknown, what: string, max: number): string[] {
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string'))
    throw invalidParams(`${what} must be an array of strings`)
  if (v.length > max) throw invalidParams(`too many ${what} (max ${max})`)
  return v as string[]
}
function wireBytes(p: unknown[], c: Record<string, unknown>): Uint8Array {
  if (typeof p[0] !== 'string') throw invalidParams('param 0 must be an encoded transaction')
  const enc = c.encoding ?? 'base58'
  if (enc === 'base64') return Buffer.from(p[0], 'base64')
  if (enc === 'base58') {
    try {
      return bs58.decode(p[0])
    } catch {
      throw invalidParams('invalid base58 transaction')
    }
  }
  throw invalidParams(`unsupported encoding ${JSON.stringify(enc)} (base58, base64)`)
}
function slice(c: Record<string, unknown>): DataSlice | undefined {
  const s = c.dataSlice as { offset?: unknown; length?: unknown } | undefined
  return s ? { offset: uint(s.offset, 'dataSlice.offset'), length: uint(s.length, 'dataSlice.length') } : undefined
}

const withContext = (ctx: RpcContext, value: unknown): unknown => ({
  context: { apiVersion: '2.2.0', slot: ctx.ledger.slot() },
  value,
})

function accountJson(ctx: RpcContext, address: string, c: Record<string, unknown>): unknown {
  const acc = ctx.ledger.account(address)
  if (!acc) return null
  return encodeAccount(acc, parseEncoding(c.encoding, 'base58'), slice(c), (m) => mintDecimalsOf(ctx.ledger.account(m)))
}

function tokenBalance(ctx: RpcContext, address: string): unknown {
  const t = tokenAccountOf(ctx.ledger.account(address))
  if (!t) throw new RpcError(-32602, 'Invalid param: not a Token account')
  return withContext(ctx, tokenAmount(t.amount, mintDecimalsOf(ctx.ledger.account(t.mint)) ?? 0))
}

const handlers: Record<string, Handler> = {
  getHealth: () => 'ok',
  getVersion: () => ({ 'solana-core': '2.2.0', 'feature-set': 0 }),
  getGenesisHash: (_p, ctx) => ctx.ledger.clock.genesisHash(),
  getSlot: (_p, ctx) => ctx.ledger.slot(),
  getBlockHeight: (_p, ctx) => ctx.ledger.slot(),
  getEpochInfo: (_p, ctx) => {
    const slot = ctx.ledger.slot()
    return {
      absoluteSlot: slot,
      blockHeight: slot,
      epoch: Math.floor(slot / SLOTS_PER_EPOCH),
      slotIndex: slot % SLOTS_PER_EPOCH,
      slotsInEpoch: SLOTS_PER_EPOCH,
      transactionCount: ctx.ledger.transactionCount(),
    }
  },
  getEpochSchedule: () => ({
    slotsPerEpoch: SLOTS_PER_EPOCH,
    leaderScheduleSlotOffset: SLOTS_PER_EPOCH,
    warmup: false,
    firstNormalEpoch: 0,
    firstNormalSlot: 0,
  }),
  getLatestBlockhash: (_p, ctx) => {
    const { blockhash, lastValidBlockHeight } = ctx.ledger.clock.latest()
    return withContext(ctx, { blockhash, lastValidBlockHeight })
  },
  isBlockhashValid: (p, ctx) => {
    if (typeof p[0] !== 'string') throw invalidParams('param 0 must be a blockhash')
    return withContext(ctx, ctx.ledger.clock.issuedSlot(p[0]) !== undefined)
  },
  getFeeForMessage: (p, ctx) => {
    if (typeof p[0] !== 'string') throw invalidParams('param 0 must be a base64 message')
    let msg: VersionedMessage
    try {
      msg = VersionedMessage.deserialize(Buffer.from(p[0], 'base64'))
    } catch {
      throw invalidParams('invalid message')
    }
    const valid = ctx.ledger.clock.issuedSlot(msg.recentBlockhash) !== undefined
    return withContext(ctx, valid ? LAMPORTS_PER_SIGNATURE * msg.header.numRequiredSignatures : null)
  },
  getMinimumBalanceForRentExemption: (p, ctx) => Number(ctx.ledger.minimumBalance(uint(p[0], 'data length'))),
  getBalance: (p, ctx) => withContext(ctx, Number(ctx.ledger.balance(addr(p, 0)))),
  getAccountInfo: (p, ctx) => withContext(ctx, accountJson(ctx, addr(p, 0), cfg(p, 1))),
  getMultipleAccounts: (p, ctx) => {
    const keys = strings(p[0], 'pubkeys', MAX_KEYS)
    if (!keys.every(isAddress)) throw invalidParams('pubkeys must be base58 public keys')
    const c = cfg(p, 1)
    return withContext(
      ctx,
      keys.map((k) => accountJson(ctx, k, c)),
    )
  },
  getTokenAccountBalance: (p, ctx) => tokenBalance(ctx, addr(p, 0)),
  getTokenSupply: (p, ctx) => {
    const info = ctx.ledger.account(addr(p, 0))
    const decimals = mintDecimalsOf(info)
    if (!info || decimals === undefined) throw new RpcError(-32602, 'Invalid param: not a Token mint')
    return withContext(ctx, tokenAmount(Buffer.from(info.data).readBigUInt64LE(36), decimals))
  },
  getSignatureStatuses: (p, ctx) => {
    const sigs = strings(p[0], 'signatures', MAX_SIGNATURES)
    return withContext(
      ctx,
      sigs.map((s) => {
        const st = ctx.ledger.status(s)
        if (!st) return null
        // One node, no forks: whatever is processed is final.
        return {
          slot: st.slot,
          confirmations: null,
          err: st.err,
          status: st.err === null ? { Ok: null } : { Err: st.err },
          confirmationStatus: 'finalized',
        }
      }),
    )
  },
  getTransaction: (p, ctx) => {
    if (typeof p[0] !== 'string') throw invalidParams('param 0 must be a signature')
    const c = typeof p[1] === 'string' ? { encoding: p[1] } : cfg(p, 1)
    const r = ctx.ledger.transaction(p[0])
    return r ? transactionJson(r, c.encoding === 'base64' ? 'base64' : 'json') : null
  },
  sendTransaction: (p, ctx) => {
    const c = cfg(p, 1)
    const sig = ctx.ledger.send(wireBytes(p, c), { skipPreflight: c.skipPreflight === true })
    ctx.changed()
    return sig
  },
  simulateTransaction: (p, ctx) => {
    const c = cfg(p, 1)
    const want = c.accounts as { addresses?: unknown; encoding?: unknown } | undefined
    const addresses = want ? strings(want.addresses, 'accounts.addresses', MAX_KEYS) : undefined
    if (addresses && !addresses.every(isAddress)) throw invalidParams('accounts.addresses must be base58 public keys')
    const r = ctx.ledger.simulate(wireBytes(p, c), {
      sigVerify: c.sigVerify === true,
      replaceRecentBlockhash: c.replaceRecentBlockhash === true,
      accounts: addresses,
    })
    const enc = parseEncoding(want?.encoding, 'base64')
    const accounts =
      r.accounts?.map((a) =>
        a ? encodeAccount(a, enc, undefined, (m) => mintDecimalsOf(ctx.ledger.account(m))) : null,
      ) ?? null
    return withContext(ctx, { ...r, accounts, innerInstructions: null })
  },
  requestAirdrop: (p, ctx) => {
    const sig = ctx.ledger.airdrop(addr(p, 0), BigInt(uint(p[1], 'lamports')))
    ctx.changed()
    return sig
  },
  kiln_devInfo: (_p, ctx) => ({ mint: ctx.mint, decimals: TOKEN_DECIMALS }),
  kiln_fund: (p, ctx) => {
    const c = cfg(p, 1)
    const opts = {
      lamports: c.lamports === undefined ? undefined : uint(c.lamports, 'lamports'),
      tokens: c.tokens === undefined ? undefined : uint(c.tokens, 'tokens'),
    }
    const signature = fund(ctx.ledger, ctx.mintAuthority, ctx.mint, addr(p, 0), opts)
    ctx.changed()
    return signature ? { signature } : {}
  },
}

/** Runs one JSON-RPC call; throws RpcError for anything a client should see as an error. */
export function dispatch(method: string, params: unknown, ctx: RpcContext): unknown {
  const h = Object.hasOwn(handlers, method) ? handlers[method] : undefined
  if (!h) throw new RpcError(-32601, 'Method not found')
  if (params !== undefined && params !== null && !Array.isArray(params)) throw invalidParams('params must be an array')
  try {
    return h((params as unknown[] | undefined) ?? [], ctx)
  } catch (e) {
    if (e instanceof RpcError) throw e
    if (isKilnError(e, 'PAYLOAD_INVALID')) throw invalidParams(e.message)
    throw new RpcError(-32603, `Internal error: ${(e as Error).message}`)
  }
}
