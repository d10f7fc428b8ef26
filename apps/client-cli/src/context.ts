import { join } from 'node:path'
import { homedir } from 'node:os'
import pc from 'picocolors'
import {
  formatKilnError,
  isKilnError,
  jobId as jobIdSchema,
  KilnError,
  loadIdentity,
  moneyFormat,
  TEST_TOKEN,
  type Identity,
  type TokenUnit,
} from '@kiln/protocol'
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

/**
 * Token amounts in base units, shown as the coin: 1500000 → "1.50 tUSDC". Commands that talk to
 * the marketplace use its unit (`await client.money()`); this is for the ledger alone: pass the
 * mint's unit (tokenUnitFor), the default is the devchain's test stablecoin.
 */
export function money(units: number | null | undefined, unit: TokenUnit = TEST_TOKEN): string {
  return moneyFormat(unit).amount(units)
}

/** A job id checked before anything is sent: a mistyped one gets one line, not a request. */
export function assertJobId(id: string): string {
  if (jobIdSchema.safeParse(id).success) return id
  throw new KilnError(
    'PAYLOAD_INVALID',
    `${JSON.stringify(id)} is not a job id: job ids look like job_0mwqa8vhh5f8e8b7616d616e4 (job_ and 10 to 40 lower-case letters or digits); kiln jobs lists yours`,
    { field: 'jobId', jobId: id },
  )
}

export function exitCodeFor(e: unknown): number {
  if (!isKilnError(e)) return Exit.jobFailed
  if (
    [
      'PAYLOAD_INVALID',
      'SPEC_FILE_UNREADABLE',
      'KEYPAIR_FILE_INVALID',
      'KEYPAIR_FILE_MISSING',
      'CONFIG_INVALID',
    ].includes(e.kind)
  )
    return Exit.badInput
  if (['PEER_UNREACHABLE', 'CHAIN_UNREACHABLE'].includes(e.kind)) return Exit.unreachable
  return Exit.rejected
}

export function reportError(io: Io, e: unknown, json?: boolean, g?: Pick<GlobalOpts, 'api'>): number {
  const code = exitCodeFor(e)
  if (json)
    io.out(
      JSON.stringify({
        ok: false,
        error: isKilnError(e) ? e.toJSON() : { message: String((e as Error)?.message ?? e) },
      }),
    )
  else io.err(pc.red(isKilnError(e) ? oneIssueOneLine(e) : `error: ${(e as Error)?.message ?? String(e)}`))
  if (json) return code
  if (isKilnError(e, 'KEYPAIR_FILE_MISSING')) io.err('  create one with: kiln keygen')
  if (isKilnError(e, 'PEER_UNREACHABLE') && g) {
    io.err(
      `  check the marketplace's address: --api or KILN_API is ${g.api}${g.api === defaultGlobals({}).api ? ' (the default)' : ''}; is a marketplace running there, and is it Kiln's API (http://host:port, no path)?`,
    )
  }
  return code
}

/** A request refused for one field already names it and why in its message: a list under it would repeat that. */
function oneIssueOneLine(e: KilnError): string {
  const issues = e.context.issues ?? []
  const only = issues.length === 1 ? issues[0] : undefined
  if (!only || !e.message.includes(only.message)) return formatKilnError(e)
  return `${e.code} ${e.message}${only.expected && !e.message.includes(only.expected) ? ` (expected ${only.expected})` : ''}`
}

export { KilnError }
