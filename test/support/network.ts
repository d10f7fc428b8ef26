import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { Identity, loadOrCreateIdentity } from '@kiln/protocol'
import { createKilnClient } from '@kiln/sdk'
import { startPostgres, type PostgresServer } from './postgres.ts'
import { startRedis, type RedisServer } from './redis.ts'

const ROOT = resolve(import.meta.dirname, '..', '..')

export interface NetworkInit {
  providers?: number
  dataDir?: string
  web?: boolean
  pricePerHour?: number
  lockWindowMs?: number
  /** Coordinator processes; more than one share a Postgres server (started here). */
  marketplaces?: number
  /** Keep the coordinators' database in a Postgres server (started here) even for one, so a test can read it too. */
  postgres?: boolean
  /** Where child processes' stderr goes; default <dataDir>/logs. */
  onReady?: (part: string, info: Record<string, unknown>) => void
  /** Extra marketplace environment (KILN_SPOT_CHECK_P, KILN_FEE_BPS, ...). */
  marketEnv?: Record<string, string>
  /** The script to start provider i with instead of the provider app (a test harness around it). */
  providerScript?: (i: number) => string | undefined
  /** Environment for provider i's process. */
  providerEnv?: (i: number) => Record<string, string>
  /** Provider i's price per hour, when not pricePerHour. */
  providerPrice?: (i: number) => number | undefined
  /** Whether provider i's wallet gets PROVIDER_FUNDS before it starts (default: yes). */
  providerFunded?: (i: number) => boolean
}

/** What each provider's wallet gets before it starts: SOL for fees and tokens for its bonds. */
export const PROVIDER_FUNDS = 20_000_000

export interface Proc {
  name: string
  child: ChildProcess
  info: Record<string, unknown>
  stop(): Promise<void>
}

export interface Network {
  dataDir: string
  redis: RedisServer
  rpcUrl: string
  mint: string
  api: string
  arbiter: string
  meshAddrs: string[]
  /** Every coordinator's API, instance 0 first (`api` is the first). */
  apis: string[]
  markets: Proc[]
  databaseUrl?: string
  /** Stops coordinator `i` (SIGKILL when `crash`) and starts it again on the same data. */
  restartMarketplace(i: number, opts?: { crash?: boolean }): Promise<Proc>
  providers: Proc[]
  procs: Proc[]
  /** Gives `address` SOL for fees and stablecoin base units, through the devchain's faucet. */
  fund(address: string, opts: { lamports?: number; tokens?: number }): Promise<void>
  startProvider(index: number): Promise<Proc>
  stop(): Promise<void>
}

/** Spawns `node --import tsx <script>` and resolves with the first JSON line it prints. */
export async function spawnPart(
  name: string,
  script: string,
  args: string[],
  env: Record<string, string>,
  logDir: string,
  timeoutMs = 60_000,
): Promise<Proc> {
  mkdirSync(logDir, { recursive: true })
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, script), ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const log = createWriteStream(join(logDir, `${name}.log`))
  child.stderr?.pipe(log)
  const info = await new Promise<Record<string, unknown>>((resolveReady, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${name} did not become ready in ${timeoutMs} ms; see ${join(logDir, `${name}.log`)}`)),
      timeoutMs,
    )
    const rl = createInterface({ input: child.stdout! })
    rl.on('line', (line) => {
      log.write(`[stdout] ${line}\n`)
      if (!line.startsWith('{')) return
      try {
        clearTimeout(timer)
        resolveReady(JSON.parse(line) as Record<string, unknown>)
      } catch {
        /* not the ready line */
      }
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`${name} exited with ${code} before it was ready; see ${join(logDir, `${name}.log`)}`))
    })
  })
  return {
    name,
    child,
    info,
    stop: () =>
      new Promise<void>((done) => {
        if (child.exitCode !== null || child.signalCode !== null) return done()
        const kill = setTimeout(() => child.kill('SIGKILL'), 5000)
        child.once('exit', () => {
          clearTimeout(kill)
          done()
        })
        child.kill('SIGTERM')
      }),
  }
}

async function rpc(url: string, method: string, params: unknown[]): Promise<unknown> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  })
  const body = (await res.json()) as { result?: unknown; error?: { message: string } }
  if (body.error) throw new Error(`${method}: ${body.error.message}`)
  return body.result
}

/**
 * A whole local network on loopback, every part its own process: Redis, the devchain
 * (LiteSVM behind JSON-RPC), the marketplace (coordinator + API + web) and N providers.
 */
export async function startNetwork(init: NetworkInit = {}): Promise<Network> {
  const dataDir = init.dataDir ?? mkdtempSync(join(tmpdir(), 'kiln-net-'))
  const logDir = join(dataDir, 'logs')
  const procs: Proc[] = []
  const redis = await startRedis()
  const nMarkets = init.marketplaces ?? 1
  let pg: PostgresServer | undefined
  try {
    if (nMarkets > 1 || init.postgres) pg = await startPostgres()
    const chain = await spawnPart(
      'devchain',
      'packages/devchain/src/bin.ts',
      ['--port', '0', '--data', join(dataDir, 'devchain')],
      {},
      logDir,
    )
    procs.push(chain)
    init.onReady?.('devchain', chain.info)
    const rpcUrl = String(chain.info.rpcUrl)
    const mint = String(chain.info.mint)
    const fund = async (address: string, opts: { lamports?: number; tokens?: number }) => {
      await rpc(rpcUrl, 'kiln_fund', [address, opts])
    }

    const ports: string[] = []
    const marketEnv = (i: number, bootstrap: string[]) => ({
      KILN_DATA_DIR: join(dataDir, 'marketplace'),
      KILN_PORT: ports[i] ?? '0',
      KILN_MESH_LISTEN: '/ip4/127.0.0.1/tcp/0',
      REDIS_URL: redis.url,
      SOLANA_RPC_URL: rpcUrl,
      KILN_MINT: mint,
      KILN_WEB: init.web && i === 0 ? 'on' : 'off',
      KILN_LOCK_WINDOW_MS: String(init.lockWindowMs ?? 30_000),
      KILN_LOG_LEVEL: 'info',
      KILN_INSTANCE: String(i),
      KILN_BOOTSTRAP: bootstrap.join(','),
      ...(pg ? { DATABASE_URL: pg.url } : {}),
      // No spot-checks unless a test asks: a re-run needs a second provider, which most tests do not start.
      KILN_SPOT_CHECK_P: '0',
      ...init.marketEnv,
    })
    const markets: Proc[] = []
    const startMarket = async (i: number, bootstrap: string[]) => {
      const m = await spawnPart(`marketplace-${i}`, 'apps/marketplace/src/bin.ts', [], marketEnv(i, bootstrap), logDir)
      // Keep the port across restarts, so clients and the harness can reach it again.
      ports[i] = new URL(String(m.info.api)).port
      procs.push(m)
      init.onReady?.(i === 0 ? 'marketplace' : `marketplace-${i}`, m.info)
      return m
    }
    markets.push(await startMarket(0, []))
    const market = markets[0]!
    const arbiter = String(market.info.arbiter)
    await fund(arbiter, { lamports: 100_000_000_000 })
    for (let i = 1; i < nMarkets; i++) markets.push(await startMarket(i, market.info.mesh as string[]))
    const meshAddrs = markets.flatMap((m) => m.info.mesh as string[])

    const providers: Proc[] = []
    const startProvider = async (i: number) => {
      const data = join(dataDir, `provider-${i}`)
      // Funded before it starts, as an owner would: one that cannot post bonds advertises itself unavailable.
      if (init.providerFunded?.(i) ?? true)
        await fund(loadOrCreateIdentity(join(data, 'id.json')).address, {
          lamports: 1_000_000_000,
          tokens: PROVIDER_FUNDS,
        })
      const p = await spawnPart(
        `provider-${i}`,
        init.providerScript?.(i) ?? 'apps/provider/src/bin.ts',
        [
          'start',
          '--data',
          data,
          '--marketplace',
          arbiter,
          '--bootstrap',
          ...meshAddrs,
          '--rpc',
          rpcUrl,
          '--mint',
          mint,
          '--price',
          String(init.providerPrice?.(i) ?? init.pricePerHour ?? 360_000),
          '--region',
          'local',
        ],
        init.providerEnv?.(i) ?? {},
        logDir,
      )
      procs.push(p)
      init.onReady?.(`provider-${i}`, p.info)
      return p
    }
    for (let i = 0; i < (init.providers ?? 2); i++) providers.push(await startProvider(i))

    const api = String(market.info.api)
    await waitFor(
      async () => {
        const seen = await createKilnClient({ url: api, identity: Identity.generate() }).providers()
        return providers.every((p) => seen.some((s) => s.address === p.info.address))
      },
      30_000,
      'providers to appear in the marketplace inventory',
    )

    return {
      dataDir,
      redis,
      rpcUrl,
      mint,
      api,
      arbiter,
      meshAddrs,
      providers,
      procs,
      fund,
      startProvider,
      apis: markets.map((m) => String(m.info.api)),
      markets,
      databaseUrl: pg?.url,
      async restartMarketplace(i, opts = {}) {
        const old = markets[i]!
        if (opts.crash) old.child.kill('SIGKILL')
        await old.stop()
        const others = markets.filter((_, j) => j !== i).flatMap((m) => m.info.mesh as string[])
        markets[i] = await startMarket(i, [...others, ...providers.flatMap((p) => p.info.mesh as string[])])
        return markets[i]!
      },
      async stop() {
        for (const p of [...procs].reverse()) await p.stop()
        await redis.stop()
        await pg?.stop()
        unmountUnder(dataDir)
      },
    }
  } catch (e) {
    for (const p of [...procs].reverse()) await p.stop()
    await redis.stop()
    await pg?.stop()
    throw e
  }
}

/**
 * A provider killed mid-job (as fault tests do) leaves its job's /out image mounted until its
 * next start would clean it up; these networks never start it again, so their loop devices
 * are let go here. Lazy unmount frees the loop device as soon as nothing holds the mount.
 */
function unmountUnder(dir: string): void {
  if (!existsSync('/proc/mounts')) return
  const targets = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1] ?? '')
    .filter((t) => t.startsWith(`${dir}/`))
  for (const t of targets.reverse()) {
    try {
      execFileSync('umount', ['-l', t], { stdio: 'ignore' })
    } catch {
      /* not ours to unmount (not root): the provider's next start would */
    }
  }
}

export async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      if (await check()) return
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 200))
  }
}
