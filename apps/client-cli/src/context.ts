import { join } from 'node:path'
import { homedir } from 'node:os'
import pc from 'picocolors'
import { formatKilnError, isKilnError, KilnError, loadIdentity, TOKEN_DECIMALS, type Identity } from '@kiln/protocol'
import { createKilnClient, type KilnClient } from '@kiln/sdk'

/** Exit codes mean the same in every command, so scripts can branch on them. */
export const Exit = { ok: 0, jobFailed: 1, badInput: 2, rejected: 3, unreachable: 4 } as const

export interface GlobalOpts {
  api: string
  keypair: string
  json?: boolean
}

export function defaultGlobals(env: NodeJS.ProcessEnv = process.env): GlobalOpts {
  return {
    api: env.KILN_API ?? 'http://127.0.0.1:7700',
    keypair: env.KILN_KEYPAIR ?? join(homedir(), '.config', 'kiln', 'id.json'),
  }
}

export interface Io {
  out(line: string): void
  err(line: string): void
}

export const stdio: Io = {
  out: (l) => process.stdout.write(`${l}\n`),
  err: (l) => process.stderr.write(`${l}\n`),
}

export function openClient(g: GlobalOpts): { client: KilnClient; identity: Identity } {
  const identity = loadIdentity(g.keypair)
  return { client: createKilnClient({ url: g.api, identity }), identity }
}

/** Token amounts in base units, shown as decimals: 1500000 → "1.500000". */
export function money(units: number | null | undefined): string {
  if (units === null || units === undefined) return '-'
  return (units / 10 ** TOKEN_DECIMALS).toFixed(TOKEN_DECIMALS)
}

export function exitCodeFor(e: unknown): number {
  if (!isKilnError(e)) return Exit.jobFailed
  if (['PAYLOAD_INVALID', 'SPEC_FILE_UNREADABLE', 'KEYPAIR_FILE_INVALID', 'KEYPAIR_FILE_MISSING', 'CONFIG_INVALID'].includes(e.kind)) return Exit.badInput
  if (['PEER_UNREACHABLE', 'CHAIN_UNREACHABLE'].includes(e.kind)) return Exit.unreachable
  return Exit.rejected
}

export function reportError(io: Io, e: unknown, json?: boolean): number {
  const code = exitCodeFor(e)
  if (json) io.out(JSON.stringify({ ok: false, error: isKilnError(e) ? e.toJSON() : { message: String((e as Error)?.message ?? e) } }))
  else io.err(pc.red(isKilnError(e) ? formatKilnError(e) : `error: ${(e as Error)?.message ?? String(e)}`))
  if (isKilnError(e, 'KEYPAIR_FILE_MISSING') && !json) io.err('  create one with: kiln keygen')
  return code
}

export { KilnError }
