/**
 * `npm run devnet`: a whole Kiln network on this machine — Redis, the devchain ledger, the
 * marketplace (coordinator + API + web app) and two providers — then the sample job end to
 * end through the real `kiln` CLI. Keeps running until Ctrl-C; `--exit` stops after the job.
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { run } from '@kiln/client-cli'
import { formatAmount, loadOrCreateIdentity, TEST_TOKEN } from '@kiln/protocol'
import { startNetwork } from '../test/support/network.ts'

const args = process.argv.slice(2)
const exitAfter = args.includes('--exit')
const providers = Number(args[args.indexOf('--providers') + 1]) || 2
const root = resolve(import.meta.dirname, '..')
const dataDir = join(root, '.kiln', 'devnet')
const webBuilt = existsSync(join(root, 'apps', 'marketplace', '.next', 'BUILD_ID'))

const t0 = Date.now()
const say = (msg: string) =>
  process.stdout.write(`[devnet ${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${msg}\n`)

rmSync(dataDir, { recursive: true, force: true })
mkdirSync(dataDir, { recursive: true })
say(`starting a local network in ${dataDir} (logs in ${join(dataDir, 'logs')})`)
const net = await startNetwork({
  providers,
  dataDir,
  web: webBuilt,
  // The marketplace's own defaults (tests turn spot-checks off): one job in ten is re-run on the other provider.
  marketEnv: { KILN_SPOT_CHECK_P: '0.1' },
  onReady: (part, info) =>
    say(
      `${part.padEnd(12)} ready  ${part === 'devchain' ? `rpc ${String(info.rpcUrl)}  mint ${String(info.mint)}` : part === 'marketplace' ? `api+web ${String(info.api)}  arbiter ${String(info.arbiter)}` : `address ${String(info.address)}`}`,
    ),
})
const stop = async () => {
  say('stopping')
  await net.stop()
  process.exit(0)
}
process.on('SIGINT', () => void stop())
process.on('SIGTERM', () => void stop())
say(`redis ${net.redis.url}; all ${providers} providers are in the marketplace inventory`)
if (!webBuilt) say('web app not built (npm run setup builds it); serving the API only')

const keypair = join(dataDir, 'client.json')
const client = loadOrCreateIdentity(keypair)
const tokens = 10_000_000
await net.fund(client.address, { lamports: 2_000_000_000, tokens })
say(`client ${client.address} funded with ${formatAmount(tokens, TEST_TOKEN)} (the devchain's test stablecoin)`)
say('running the sample job: kiln submit examples/matmul.yaml')
process.stdout.write('\n')
const code = await run([
  '--api',
  net.api,
  '--keypair',
  keypair,
  'submit',
  join(root, 'examples', 'matmul.yaml'),
  '--out',
  join(dataDir, 'out'),
])
process.stdout.write('\n')
say(code === 0 ? 'sample job done end to end' : `sample job FAILED (exit ${code}); see ${join(dataDir, 'logs')}`)

if (exitAfter) {
  await net.stop()
  process.exit(code)
}
process.stdout.write(`
The network keeps running. In another terminal:
  export KILN_API=${net.api} KILN_KEYPAIR=${keypair}
  npx kiln providers
  npx kiln quote examples/render.yaml
  npx kiln submit examples/render.yaml
  npx kiln jobs
Web app: ${webBuilt ? net.api : '(not built)'}     Ctrl-C stops everything.
`)
