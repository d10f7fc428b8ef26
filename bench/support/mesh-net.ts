import { spawn } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from '../../test/support/redis.ts'
import { spawnTsx, track, type Part } from './procs.ts'

export interface Base {
  dir: string
  logDir: string
  redisUrl: string
  rpcUrl: string
  mint: string
  stop(): Promise<void>
}

async function listening(port: number): Promise<boolean> {
  return new Promise((ok) => {
    const s = connect(port, '127.0.0.1', () => {
      s.destroy()
      ok(true)
    })
    s.once('error', () => ok(false))
  })
}

/** Redis and the devchain, shared by every round (neither is what is measured). */
export async function startBase(): Promise<Base> {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-bench-mesh-'))
  const logDir = join(dir, 'logs')
  const port = await freePort()
  const redis = track(
    spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
      { stdio: 'ignore' },
    ),
  )
  const stopRedis = () =>
    new Promise<void>((done) => {
      if (redis.exitCode !== null || redis.signalCode !== null) return done()
      redis.once('exit', () => done())
      redis.kill('SIGTERM')
    })
  try {
    for (let t = Date.now(); !(await listening(port)); await new Promise((r) => setTimeout(r, 50))) {
      if (redis.exitCode !== null)
        throw new Error(`redis-server exited with ${redis.exitCode}; is it installed (npm run setup)?`)
      if (Date.now() - t > 10_000) throw new Error('redis-server did not listen in 10 s')
    }
    const chain = await spawnTsx(
      'devchain',
      'packages/devchain/src/bin.ts',
      ['--port', '0', '--data', join(dir, 'devchain')],
      {},
      logDir,
    )
    return {
      dir,
      logDir,
      redisUrl: `redis://127.0.0.1:${port}`,
      rpcUrl: String(chain.info.rpcUrl),
      mint: String(chain.info.mint),
      async stop() {
        await chain.stop()
        await stopRedis()
      },
    }
  } catch (e) {
    await stopRedis()
    throw e
  }
}

export interface Market {
  part: Part
  api: string
  arbiter: string
  mesh: string[]
}

export async function startMarket(base: Base, round: string): Promise<Market> {
  const part = await spawnTsx(
    `${round}-marketplace`,
    'apps/marketplace/src/bin.ts',
    [],
    {
      KILN_DATA_DIR: join(base.dir, round, 'marketplace'),
      KILN_PORT: '0',
      KILN_MESH_LISTEN: '/ip4/127.0.0.1/tcp/0',
      REDIS_URL: base.redisUrl,
      SOLANA_RPC_URL: base.rpcUrl,
      KILN_MINT: base.mint,
      KILN_WEB: 'off',
      // A queue prefix per round, so that rounds sharing one Redis cannot see each other's jobs.
      KILN_QUEUE_PREFIX: `bench-${round}`,
    },
    base.logDir,
  )
  return { part, api: String(part.info.api), arbiter: String(part.info.arbiter), mesh: part.info.mesh as string[] }
}

/**
 * Starts `n` provider daemons, `batch` at a time (many tsx processes starting at once on two
 * cores only slow each other down). The first `seeds` bootstrap from the marketplace alone;
 * every later one is handed the marketplace and the seeds, as a real network hands out several
 * bootstrap addresses. `onReady` fires as each one prints its ready line.
 */
export async function startProviders(
  base: Base,
  market: Market,
  round: string,
  n: number,
  opts: { batch: number; seeds: number; onReady?: (p: Part) => void },
): Promise<Part[]> {
  const out: Part[] = []
  const one = async (i: number, bootstrap: string[]) => {
    const p = await spawnTsx(
      `${round}-provider-${i}`,
      'apps/provider/src/bin.ts',
      [
        'start',
        '--data',
        join(base.dir, round, `provider-${i}`),
        '--marketplace',
        market.arbiter,
        '--bootstrap',
        ...bootstrap,
        '--rpc',
        base.rpcUrl,
        '--mint',
        base.mint,
        '--region',
        'local',
      ],
      {},
      base.logDir,
    )
    out[i] = p
    opts.onReady?.(p)
    return p
  }
  const seeds = await Promise.all(Array.from({ length: Math.min(opts.seeds, n) }, (_, i) => one(i, market.mesh)))
  const list = [...market.mesh, ...seeds.flatMap((s) => s.info.mesh as string[])]
  let next = seeds.length
  // A pool of `batch` slots rather than lock-step batches: a slow start does not hold up the rest.
  await Promise.all(
    Array.from({ length: opts.batch }, async () => {
      while (next < n) await one(next++, list)
    }),
  )
  return out
}

/**
 * Polls the marketplace's live inventory (the public tRPC query) and remembers when each
 * address was first and last seen, so every measurement reads the same stream of snapshots.
 */
export class InventoryWatch {
  readonly firstSeen = new Map<string, number>()
  current = new Set<string>()
  polls = 0
  /** Times an address that was in the inventory was missing from the next snapshot. */
  losses = 0
  failures = 0
  lastOkAt = 0
  lastError = ''
  #running = true
  readonly #done: Promise<void>
  readonly #waiters = new Set<() => void>()

  constructor(
    readonly api: string,
    readonly everyMs = 50,
  ) {
    this.#done = this.#loop()
  }

  async #loop(): Promise<void> {
    while (this.#running) {
      try {
        const res = await fetch(`${this.api}/trpc/network.providers`, { signal: AbortSignal.timeout(5_000) })
        const body = (await res.json()) as { result: { data: { address: string }[] } }
        const at = performance.now()
        const next = new Set(body.result.data.map((p) => p.address))
        for (const a of this.current) if (!next.has(a)) this.losses++
        this.current = next
        for (const a of this.current) if (!this.firstSeen.has(a)) this.firstSeen.set(a, at)
        this.polls++
        this.lastOkAt = at
        for (const w of this.#waiters) w()
      } catch (e) {
        // The marketplace is busy; poll again, and say so if a wait times out.
        this.failures++
        this.lastError = (e as Error).message
      }
      await new Promise((r) => setTimeout(r, this.everyMs))
    }
  }

  /** Resolves with performance.now() at the first snapshot for which `pred` holds. */
  until(pred: (inv: Set<string>) => boolean, timeoutMs: number, what: string): Promise<number> {
    return new Promise((ok, fail) => {
      const check = () => {
        if (!pred(this.current)) return
        this.#waiters.delete(check)
        clearTimeout(timer)
        ok(performance.now())
      }
      const timer = setTimeout(() => {
        this.#waiters.delete(check)
        const last = this.lastOkAt ? `${Math.round(performance.now() - this.lastOkAt)} ms ago` : 'never'
        fail(
          new Error(
            `timed out after ${timeoutMs} ms waiting for ${what} (${this.polls} polls, last answer ${last}, ${this.failures} failed${this.lastError ? `: ${this.lastError}` : ''}; ${this.current.size} in the inventory)`,
          ),
        )
      }, timeoutMs)
      this.#waiters.add(check)
      check()
    })
  }

  async stop(): Promise<void> {
    this.#running = false
    await this.#done
  }
}
