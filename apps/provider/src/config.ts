import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { z } from 'zod'
import { address, KilnError, parseOrThrow } from '@kiln/protocol'

/** The provider's settings file (`<dataDir>/config.json`); `kiln-provider init` writes it. */
export const ProviderConfig = z.object({
  /** The marketplace (arbiter) address whose leases are accepted. */
  marketplace: address,
  /** Mesh nodes to join through (multiaddrs with /p2p/…); give more than one. */
  bootstrap: z.array(z.string().min(1)).min(1, 'at least one bootstrap multiaddr (the marketplace prints its own)'),
  listen: z.array(z.string()).default(['/ip4/127.0.0.1/tcp/0']),
  rpcUrl: z.string().url().default('http://127.0.0.1:8899'),
  mint: address,
  /** Price per hour of lease, in token base units (1_000_000 = 1.00). */
  pricePerHour: z.number().int().min(1).default(360_000),
  region: z.string().min(1).max(32).default('local'),
  dockerSocket: z.string().default('/var/run/docker.sock'),
}).strict()
export type ProviderConfig = z.output<typeof ProviderConfig>

export function configPath(dataDir: string): string {
  return join(dataDir, 'config.json')
}

export function loadConfig(dataDir: string, overrides: Partial<Record<keyof ProviderConfig, unknown>> = {}): ProviderConfig {
  const path = configPath(dataDir)
  let fromFile: Record<string, unknown> = {}
  if (existsSync(path)) {
    try {
      fromFile = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>
    } catch (cause) {
      throw new KilnError('CONFIG_INVALID', `${path} is not valid JSON; fix it or run \`kiln-provider init --force\``, { path }, { cause })
    }
  }
  const merged = { ...fromFile, ...Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined)) }
  try {
    return parseOrThrow(ProviderConfig, merged, `provider config (${path})`)
  } catch (e) {
    if (e instanceof KilnError) throw new KilnError('CONFIG_INVALID', e.message, e.context)
    throw e
  }
}

export function writeConfig(dataDir: string, config: Partial<ProviderConfig>): string {
  mkdirSync(dataDir, { recursive: true })
  const path = configPath(dataDir)
  writeFileSync(path, `${JSON.stringify(config, null, 2)}\n`)
  return path
}
