import {
  AccountLayout,
  MintLayout,
  MultisigLayout,
  ACCOUNT_SIZE,
  MINT_SIZE,
  MULTISIG_SIZE,
  TOKEN_PROGRAM_ID,
  TOKEN_2022_PROGRAM_ID,
} from '@solana/spl-token'
import bs58 from 'bs58'
import { RpcError } from './rpc-error.ts'

/** One account as the ledger holds it. */
export interface AccountState {
  lamports: bigint
  owner: string
  data: Uint8Array
  executable: boolean
}

/** Real nodes report rent-exempt accounts with rentEpoch u64::MAX. */
const RENT_EPOCH = Number(2n ** 64n - 1n)
const TOKEN_PROGRAMS = new Set([TOKEN_PROGRAM_ID.toBase58(), TOKEN_2022_PROGRAM_ID.toBase58()])

export type Encoding = 'base64' | 'base58' | 'jsonParsed'

export function parseEncoding(value: unknown, fallback: Encoding): Encoding {
  if (value === undefined || value === null) return fallback
  if (value === 'base64' || value === 'base58' || value === 'jsonParsed') return value
  throw new RpcError(
    -32602,
    `Invalid params: unsupported encoding ${JSON.stringify(value)} (base64, base58, jsonParsed)`,
  )
}

export interface DataSlice {
  offset: number
  length: number
}

/** The `UiAccount` JSON of an account; `mintDecimals` lets token accounts show their amounts. */
export function encodeAccount(
  acc: AccountState,
  encoding: Encoding,
  slice: DataSlice | undefined,
  mintDecimals: (mint: string) => number | undefined,
): Record<string, unknown> {
  const base = {
    lamports: Number(acc.lamports),
    owner: acc.owner,
    executable: acc.executable,
    rentEpoch: RENT_EPOCH,
    space: acc.data.length,
  }
  if (encoding === 'jsonParsed' && !slice) {
    const parsed = parseTokenData(acc, mintDecimals)
    if (parsed) return { ...base, data: { program: 'spl-token', parsed, space: acc.data.length } }
  }
  const data = slice ? acc.data.subarray(slice.offset, slice.offset + slice.length) : acc.data
  if (encoding === 'base58') {
    // Same limit as agave: base58 is quadratic, so large data must use base64.
    if (data.length > 128)
      throw new RpcError(
        -32600,
        'Encoded binary (base 58) data should be less than 128 bytes, please use Base64 encoding.',
      )
    return { ...base, data: [bs58.encode(data), 'base58'] }
  }
  return { ...base, data: [Buffer.from(data).toString('base64'), 'base64'] }
}

export function tokenAmount(amount: bigint, decimals: number): Record<string, unknown> {
  const s = amount.toString().padStart(decimals + 1, '0')
  const whole = s.slice(0, s.length - decimals)
  const frac = s.slice(s.length - decimals).replace(/0+$/, '')
  const uiAmountString = frac ? `${whole}.${frac}` : whole
  return { amount: amount.toString(), decimals, uiAmount: Number(uiAmountString), uiAmountString }
}

/** spl-token's jsonParsed view of token accounts, mints and multisigs (base layouts only). */
export function parseTokenData(
  acc: AccountState,
  mintDecimals: (mint: string) => number | undefined,
): Record<string, unknown> | undefined {
  if (!TOKEN_PROGRAMS.has(acc.owner)) return undefined
  const data = Buffer.from(acc.data)
  // Token-2022 mints with extensions are longer than accounts; byte 165 tells them apart.
  if (data.length === MINT_SIZE || (data.length > ACCOUNT_SIZE && data[ACCOUNT_SIZE] === 1)) {
    const m = MintLayout.decode(data.subarray(0, MINT_SIZE))
    return {
      type: 'mint',
      info: {
        mintAuthority: m.mintAuthorityOption ? m.mintAuthority.toBase58() : null,
        supply: m.supply.toString(),
        decimals: m.decimals,
        isInitialized: m.isInitialized,
        freezeAuthority: m.freezeAuthorityOption ? m.freezeAuthority.toBase58() : null,
      },
    }
  }
  if (data.length === MULTISIG_SIZE) {
    const m = MultisigLayout.decode(data)
    const signers = [
      m.signer1,
      m.signer2,
      m.signer3,
      m.signer4,
      m.signer5,
      m.signer6,
      m.signer7,
      m.signer8,
      m.signer9,
      m.signer10,
      m.signer11,
    ]
    return {
      type: 'multisig',
      info: {
        numRequiredSigners: m.m,
        numValidSigners: m.n,
        isInitialized: m.isInitialized,
        signers: signers.slice(0, m.n).map((s) => s.toBase58()),
      },
    }
  }
  if (data.length >= ACCOUNT_SIZE) {
    const a = AccountLayout.decode(data.subarray(0, ACCOUNT_SIZE))
    const mint = a.mint.toBase58()
    const decimals = mintDecimals(mint) ?? 0
    const info: Record<string, unknown> = {
      mint,
      owner: a.owner.toBase58(),
      tokenAmount: tokenAmount(a.amount, decimals),
      state: a.state === 2 ? 'frozen' : a.state === 1 ? 'initialized' : 'uninitialized',
      isNative: a.isNativeOption === 1,
    }
    if (a.delegateOption)
      Object.assign(info, {
        delegate: a.delegate.toBase58(),
        delegatedAmount: tokenAmount(a.delegatedAmount, decimals),
      })
    if (a.closeAuthorityOption) info.closeAuthority = a.closeAuthority.toBase58()
    return { type: 'account', info }
  }
  return undefined
}

/** Decimals of a mint account's data, or undefined when it is not a mint. */
export function mintDecimalsOf(acc: AccountState | undefined): number | undefined {
  if (!acc || !TOKEN_PROGRAMS.has(acc.owner) || acc.data.length < MINT_SIZE) return undefined
  return MintLayout.decode(Buffer.from(acc.data.subarray(0, MINT_SIZE))).decimals
}

/** The amount and mint of a token account's data, or undefined when it is not one. */
export function tokenAccountOf(acc: AccountState | undefined): { mint: string; amount: bigint } | undefined {
  if (!acc || !TOKEN_PROGRAMS.has(acc.owner) || acc.data.length < ACCOUNT_SIZE || acc.data.length === MULTISIG_SIZE)
    return undefined
  const a = AccountLayout.decode(Buffer.from(acc.data.subarray(0, ACCOUNT_SIZE)))
  return { mint: a.mint.toBase58(), amount: a.amount }
}
