import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { z } from 'zod'
import { address, KilnError, toFieldIssues } from '@kiln/protocol'

/** What `kiln-provider init` writes when nothing else is given: a gamer should not have to edit it. */
export const CONFIG_DEFAULTS = {
  listen: ['/ip4/127.0.0.1/tcp/0'],
  rpcUrl: 'http://127.0.0.1:8899',
  pricePerHour: 360_000,
  region: 'local',
  dockerSocket: '/var/run/docker.sock',
  dashboardPort: 7780,
  nvidiaSmi: 'nvidia-smi',
  pollSec: 5,
  autoPause: true,
  autoResumeIdleSec: 300,
  autoPauseIgnore: [] as string[],
  acceptNetworkJobs: false,
}

/** The provider's settings file (`<dataDir>/config.json`); `kiln-provider init` writes it. */
export const ProviderConfig = z
  .object({
    /** The marketplace (arbiter) address whose leases are accepted. */
    marketplace: address,
    /** Mesh nodes to join through (multiaddrs with /p2p/…); give more than one. */
    bootstrap: z.array(z.string().min(1)).min(1, 'at least one bootstrap multiaddr (the marketplace prints its own)'),
    listen: z.array(z.string()).default(CONFIG_DEFAULTS.listen),
    rpcUrl: z.string().url().default(CONFIG_DEFAULTS.rpcUrl),
    mint: address,
    /** Price per hour of lease, in token base units (1_000_000 = 1.00). */
    pricePerHour: z.number().int().min(1).default(CONFIG_DEFAULTS.pricePerHour),
    region: z.string().min(1).max(32).default(CONFIG_DEFAULTS.region),
    /**
     * The address of whoever runs this machine, when one person runs several providers: the
     * marketplace never checks one of them with another (a spot-check re-run goes to another operator).
     */
    operator: address.optional(),
    dockerSocket: z.string().min(1).default(CONFIG_DEFAULTS.dockerSocket),
    /** The local dashboard's port on 127.0.0.1; 0 picks a free one. */
    dashboardPort: z.number().int().min(0).max(65535).default(CONFIG_DEFAULTS.dashboardPort),
    /** The nvidia-smi binary; a path lets a machine with an unusual driver install (or a test) choose. */
    nvidiaSmi: z.string().min(1).default(CONFIG_DEFAULTS.nvidiaSmi),
    /** How often GPU processes and the Docker engine are checked. */
    pollSec: z.number().min(0.1).max(3600).default(CONFIG_DEFAULTS.pollSec),
    /** Pause by itself while a program that is not Kiln's uses a GPU (a game, a render). */
    autoPause: z.boolean().default(CONFIG_DEFAULTS.autoPause),
    /** After an auto-pause, resume once no foreign GPU program was seen for this long. */
    autoResumeIdleSec: z
      .number()
      .min(0)
      .max(7 * 24 * 3600)
      .default(CONFIG_DEFAULTS.autoResumeIdleSec),
    /** Process names (as nvidia-smi prints them, or their base name) that never cause an auto-pause. */
    autoPauseIgnore: z.array(z.string().min(1)).default(CONFIG_DEFAULTS.autoPauseIgnore),
    /**
     * Take jobs that ask for network access. They get the internet only (not this machine or its
     * LAN), which needs root for the firewall rules on Linux; off unless the owner turns it on.
     */
    acceptNetworkJobs: z.boolean().default(CONFIG_DEFAULTS.acceptNetworkJobs),
  })
  .strict()
export type ProviderConfig = z.output<typeof ProviderConfig>
export type ConfigOverrides = Partial<Record<keyof ProviderConfig, unknown>>

/** How to fix each key, in the words of someone who just ran `kiln-provider start`. */
const FIXES: Record<string, string> = {
  marketplace:
    'pass --marketplace <address> (the marketplace prints its arbiter address when it starts), or run `kiln-provider init --marketplace <address>`',
  bootstrap:
    'pass --bootstrap <multiaddr...> (the marketplace prints its mesh addresses), or run `kiln-provider init --bootstrap <multiaddr...>`',
  mint: 'pass --mint <address> (the stablecoin mint the marketplace uses), or run `kiln-provider init --mint <address>`',
  rpcUrl: 'pass --rpc <url>, e.g. http://127.0.0.1:8899',
  pricePerHour: 'pass --price <units>: a whole number of token base units per hour, at least 1 (1000000 = 1.00)',
  region: 'pass --region <name> (1 to 32 characters)',
  operator:
    'pass --operator <address>: the base58 address of whoever runs this machine (the same for all your machines)',
  listen: 'pass --listen <multiaddr...>, e.g. /ip4/0.0.0.0/tcp/4001',
  dashboardPort: 'set "dashboardPort" in config.json to a port number 0-65535 (0 picks a free one)',
  pollSec: 'set "pollSec" in config.json to a number of seconds between 0.1 and 3600',
  autoResumeIdleSec: 'set "autoResumeIdleSec" in config.json to a number of seconds (default 300)',
  acceptNetworkJobs:
    'set "acceptNetworkJobs" in config.json to true (take jobs with internet access) or false (the default)',
}

export function configPath(dataDir: string): string {
  return join(dataDir, 'config.json')
}

function readConfigFile(dataDir: string): Record<string, unknown> {
  const path = configPath(dataDir)
  if (!existsSync(path)) return {}
  let parsed: unknown
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'))
  } catch (cause) {
    throw new KilnError(
      'CONFIG_INVALID',
      `${path} is not valid JSON; fix it, or run \`kiln-provider init --force\` to write a new one`,
      { path },
      { cause },
    )
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new KilnError(
      'CONFIG_INVALID',
      `${path} must hold a JSON object; fix it, or run \`kiln-provider init --force\``,
      { path },
    )
  }
  return parsed as Record<string, unknown>
}

const defined = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined))

/** The config file with `overrides` (command-line flags) on top, or CONFIG_INVALID naming each bad key and its fix. */
export function loadConfig(dataDir: string, overrides: ConfigOverrides = {}): ProviderConfig {
  const path = configPath(dataDir)
  const result = ProviderConfig.safeParse({ ...readConfigFile(dataDir), ...defined(overrides) })
  if (result.success) return result.data
  const problems = toFieldIssues(result.error).map((i) => {
    const key = i.path || '(root)'
    const missing = /received undefined/.test(i.message)
    const what = missing ? 'required, but not set' : i.message
    const fix =
      i.expected === 'no other keys'
        ? `remove the unknown key(s) from ${path}`
        : (FIXES[key.split('.')[0] ?? ''] ?? `fix "${key}" in ${path}`)
    return { key, what, fix }
  })
  const lines = problems.map((p) => `  - ${p.key}: ${p.what}\n    fix: ${p.fix}`)
  throw new KilnError('CONFIG_INVALID', `the provider config (${path}) is not usable:\n${lines.join('\n')}`, {
    path,
    keys: problems.map((p) => p.key),
    problems,
  })
}

/** Writes `<dataDir>/config.json` whole (atomically: a crash never leaves half a file). */
export function writeConfig(dataDir: string, config: Record<string, unknown>): string {
  mkdirSync(dataDir, { recursive: true })
  const path = configPath(dataDir)
  writeFileSync(`${path}.tmp`, `${JSON.stringify(config, null, 2)}\n`)
  renameSync(`${path}.tmp`, path)
  return path
}

/** Changes some keys of the config file and keeps the rest as the owner wrote it. */
export function updateConfig(dataDir: string, patch: Record<string, unknown>): string {
  return writeConfig(dataDir, { ...readConfigFile(dataDir), ...defined(patch) })
}

/**
 * For `init`: the existing file (unless `force`) with defaults filled in and `overrides` on
 * top, so the owner sees every setting there is.
 */
export function initConfig(
  dataDir: string,
  overrides: Record<string, unknown>,
  force = false,
): { path: string; config: Record<string, unknown> } {
  const existing = force ? {} : readConfigFile(dataDir)
  const config = { ...CONFIG_DEFAULTS, ...existing, ...defined(overrides) }
  return { path: writeConfig(dataDir, config), config }
}
