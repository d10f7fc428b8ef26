import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { loadOrCreateIdentity } from '@kiln/protocol'
import { initConfig } from '../config.ts'
import { Exit, type Io } from './io.ts'

export interface InitOpts {
  data: string
  overrides: Record<string, unknown>
  force?: boolean
  json?: boolean
}

/** Keys `start` cannot do without and that have no sensible default: the marketplace tells you them. */
const NEEDED = ['marketplace', 'bootstrap', 'mint'] as const

/**
 * `kiln-provider init`: the keypair (kept if there is one) and a config file with every
 * setting spelled out, defaults filled in, so the owner can see and change them.
 */
export async function init(o: InitOpts, io: Io): Promise<number> {
  const keyPath = join(o.data, 'id.json')
  const existed = existsSync(keyPath)
  const identity = loadOrCreateIdentity(keyPath)
  const { path, config } = initConfig(o.data, o.overrides, o.force)
  const missing = NEEDED.filter((k) => config[k] === undefined)
  if (o.json) {
    io.out(JSON.stringify({ address: identity.address, keypair: keyPath, created: !existed, config: path, missing }))
    return Exit.ok
  }
  io.out(`provider ${identity.address}${existed ? '' : ' (new keypair)'}\nkeypair  ${keyPath}\nconfig   ${path}`)
  if (missing.length)
    io.out(
      `still to set: ${missing.join(', ')} (flags of init or start, e.g. --${missing[0]} …; the marketplace prints them)`,
    )
  else io.out(`next: kiln-provider start --data ${o.data}`)
  return Exit.ok
}
