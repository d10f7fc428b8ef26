import { z } from 'zod'
import { isAddress, KilnError, parseOrThrow } from '@kiln/protocol'

/** The only place the marketplace reads the environment. */
const Env = z.object({
  KILN_DATA_DIR: z.string().default('.kiln/marketplace'),
  KILN_HOST: z.string().default('127.0.0.1'),
  KILN_PORT: z.coerce.number().int().min(0).max(65535).default(7700),
  KILN_MESH_LISTEN: z.string().default('/ip4/127.0.0.1/tcp/7701'),
  /** Comma-separated multiaddrs of other mesh nodes to join through. */
  KILN_BOOTSTRAP: z
    .string()
    .default('')
    .transform((s) =>
      s
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean),
    ),
  REDIS_URL: z.string().url().default('redis://127.0.0.1:6379'),
  KILN_QUEUE_PREFIX: z.string().default('kiln'),
  SOLANA_RPC_URL: z.string().url().default('http://127.0.0.1:8899'),
  KILN_MINT: z.string().refine(isAddress, 'the stablecoin mint address (base58)'),
  /** The name amounts are shown with; default USDC for Circle's USDC mints, tUSDC (test) for any other. */
  KILN_TOKEN_SYMBOL: z
    .string()
    .regex(/^[A-Za-z0-9]{1,10}$/, '1 to 10 letters or digits, like USDC')
    .optional(),
  DATABASE_URL: z.string().optional(),
  /**
   * Which coordinator process this is, when several share one Redis and one Postgres. Each has
   * its own mesh key; they share the arbiter key (KILN_DATA_DIR) that signs leases.
   */
  KILN_INSTANCE: z
    .string()
    .regex(/^[a-z0-9-]{1,32}$/)
    .default('0'),
  /** Serve the web app (needs `next build` first); off serves the API only. */
  KILN_WEB: z.enum(['on', 'off', 'auto']).default('auto'),
  KILN_LOCK_WINDOW_MS: z.coerce.number().int().min(1000).default(60_000),
  /** Lock windows in a row a job may miss before it is parked until its owner is back (`kiln watch`). */
  KILN_PARK_AFTER_LAPSES: z.coerce.number().int().min(1).default(3),
  /** Default spot-check probability: the share of jobs re-run on an independent provider. */
  KILN_SPOT_CHECK_P: z.coerce.number().min(0).max(1).default(0.1),
  /** Default provider bond, as a multiple of the run's lock (10: at p = 0.1, cheating loses money). */
  KILN_BOND_RATIO: z.coerce.number().min(0).max(100).default(10),
  /** How long a spot-check re-run may wait for an independent provider before the job settles without it. */
  KILN_RERUN_WAIT_MS: z.coerce.number().int().min(1000).default(600_000),
  /** Providers scoring below this reputation get no work: a provider caught cheating falls below it for months. */
  KILN_MIN_REPUTATION: z.coerce.number().min(0).max(1).default(0.15),
  /** The marketplace fee on paid work, in basis points (100 = 1%). */
  KILN_FEE_BPS: z.coerce.number().int().min(0).max(10_000).default(100),
  /**
   * The key behind the spot-check draws (hex, at least 32 bytes). Default: derived from the
   * arbiter key, so every coordinator of a marketplace draws alike. Set it only to replay draws.
   */
  KILN_VERIFY_SECRET: z
    .string()
    .regex(/^[0-9a-f]{64,}$/, 'at least 64 lower-case hex characters')
    .optional(),
  KILN_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
})
export type Env = z.output<typeof Env>

export function readEnv(env: NodeJS.ProcessEnv = process.env): Env {
  const parsed = parseOrThrow(Env, env, 'marketplace environment')
  if (parsed.KILN_INSTANCE !== '0' && !parsed.DATABASE_URL) {
    throw new KilnError('CONFIG_INVALID', 'several coordinator instances need a shared Postgres server', {
      issues: [
        {
          path: 'DATABASE_URL',
          message: `KILN_INSTANCE=${parsed.KILN_INSTANCE} but no DATABASE_URL; the embedded database serves one process only`,
          expected: 'postgres://user@host:port/db',
        },
      ],
    })
  }
  return parsed
}
