#!/usr/bin/env node
import { join } from 'node:path'
import { run } from './cli/main.ts'

// The only place the provider reads the environment and the process's signals.
const stopSignal = new Promise<void>((resolve) => {
  process.once('SIGINT', () => resolve())
  process.once('SIGTERM', () => resolve())
})
const code = await run(process.argv.slice(2), {
  dataDir: process.env.KILN_PROVIDER_DIR ?? join(process.env.HOME ?? '.', '.kiln', 'provider'),
  stopSignal,
})
// libp2p and dockerode keep sockets open a while after stop; the work is done, so leave now.
process.exit(code)
