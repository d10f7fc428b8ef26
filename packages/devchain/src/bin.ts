/**
 * Runs a devchain until SIGINT/SIGTERM:
 *   tsx packages/devchain/src/bin.ts --port 8899 --data .kiln/devchain [--host 127.0.0.1] [--blockhash-ttl-ms 60000]
 * Prints one JSON line `{"rpcUrl","wsUrl","mint"}` once it accepts connections.
 */
import { parseArgs } from 'node:util'
import { formatKilnError, isKilnError } from '@kiln/protocol'
import { startDevchain } from './devchain.ts'

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '8899' },
    host: { type: 'string', default: '127.0.0.1' },
    data: { type: 'string' },
    'blockhash-ttl-ms': { type: 'string' },
  },
  strict: true,
})

try {
  const chain = await startDevchain({
    port: Number(values.port),
    host: values.host,
    dataDir: values.data,
    blockhashTtlMs: values['blockhash-ttl-ms'] === undefined ? undefined : Number(values['blockhash-ttl-ms']),
  })
  process.stdout.write(`${JSON.stringify({ rpcUrl: chain.rpcUrl, wsUrl: chain.wsUrl, mint: chain.mint })}\n`)
  let stopping = false
  const stop = (): void => {
    if (stopping) return
    stopping = true
    chain.stop().then(
      () => process.exit(0),
      (e: unknown) => {
        process.stderr.write(`devchain: stop failed: ${(e as Error).message}\n`)
        process.exit(1)
      },
    )
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
} catch (e) {
  process.stderr.write(`${isKilnError(e) ? formatKilnError(e) : String(e)}\n`)
  process.exit(1)
}
