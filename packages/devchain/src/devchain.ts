import { join } from 'node:path'
import { Identity, KilnError, loadOrCreateIdentity } from '@kiln/protocol'
import { createStablecoin, fund, type FundOptions } from './dev.ts'
import { closeServer, listenPair, requestHandler } from './http.ts'
import { Ledger } from './ledger.ts'
import type { RpcContext } from './rpc.ts'
import { loadLedger, saveLedger, saveLedgerAsync } from './store.ts'
import { PubSub } from './ws.ts'

export interface DevchainInit {
  /** Where the ledger and the mint authority keypair live; without it, state is in memory only. */
  dataDir?: string
  /** Default 127.0.0.1. */
  host?: string
  /** Default 8899; 0 picks a free pair. The WebSocket listens on port + 1, as web3.js expects. */
  port?: number
  /** How long a blockhash stays valid; default 60 s. */
  blockhashTtlMs?: number
}

export interface Devchain {
  rpcUrl: string
  wsUrl: string
  /** The test stablecoin (SPL mint, 6 decimals). */
  mint: string
  /** Airdrops lamports and mints stablecoin base units (10^-6 token) to `address`. */
  fund(address: string, opts: FundOptions): Promise<void>
  stop(): Promise<void>
}

const SAVE_DEBOUNCE_MS = 200

function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return '127.0.0.1'
  return host.includes(':') ? `[${host}]` : host
}

/** Starts LiteSVM behind JSON-RPC (port) and PubSub WebSocket (port + 1). */
export async function startDevchain(init: DevchainInit = {}): Promise<Devchain> {
  const host = init.host ?? '127.0.0.1'
  const ttlMs = init.blockhashTtlMs ?? 60_000
  if (!(ttlMs > 0)) throw new KilnError('CONFIG_INVALID', 'blockhashTtlMs must be positive', { blockhashTtlMs: ttlMs })
  const dir = init.dataDir
  const ledger = new Ledger(dir ? loadLedger(dir) : undefined, ttlMs)
  const authority = dir ? loadOrCreateIdentity(join(dir, 'mint-authority.json')) : Identity.generate()
  if (ledger.meta.mintAuthority && ledger.meta.mintAuthority !== authority.address) {
    throw new KilnError('CONFIG_INVALID', `the mint authority keypair in ${dir} does not match its ledger`, {
      dataDir: dir,
    })
  }
  if (!ledger.meta.mint) {
    ledger.meta.mint = createStablecoin(ledger, authority)
    ledger.meta.mintAuthority = authority.address
  }
  const mint = ledger.meta.mint

  // Saves are debounced (a burst of transactions costs one write) and serialised (one
  // write at a time, so an older snapshot never lands after a newer one).
  let timer: NodeJS.Timeout | undefined
  let writing: Promise<void> = Promise.resolve()
  const flush = (): Promise<void> => {
    if (timer) clearTimeout(timer)
    timer = undefined
    if (!dir) return writing
    const state = ledger.snapshot()
    const next = writing.then(() => saveLedgerAsync(dir, state))
    writing = next.catch(() => undefined)
    return next
  }
  const changed = (): void => {
    if (!dir || timer) return
    timer = setTimeout(() => {
      flush().catch((e: unknown) => process.emitWarning(`devchain could not save its ledger: ${(e as Error).message}`))
    }, SAVE_DEBOUNCE_MS)
  }
  if (dir) saveLedger(dir, ledger.snapshot())

  const ctx: RpcContext = { ledger, mint, mintAuthority: authority, changed }
  const pubsub = new PubSub(ledger)
  const { port, servers } = await listenPair(host, init.port ?? 8899, requestHandler(ctx))
  for (const s of servers) pubsub.attach(s)

  let stopped: Promise<void> | undefined
  return {
    rpcUrl: `http://${urlHost(host)}:${port}`,
    wsUrl: `ws://${urlHost(host)}:${port + 1}`,
    mint,
    async fund(address, opts) {
      fund(ledger, authority, mint, address, opts)
      changed()
    },
    stop() {
      stopped ??= (async () => {
        await pubsub.close()
        await Promise.all(servers.map(closeServer))
        await flush()
      })()
      return stopped
    },
  }
}
