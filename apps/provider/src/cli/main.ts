import { Command } from 'commander'
import { formatKilnError, isKilnError } from '@kiln/protocol'
import type { ConfigOverrides } from '../config.ts'
import type { DockerRuntime } from '../runtime/index.ts'
import { pause, price, resume, status } from './control.ts'
import { init } from './init.ts'
import { Exit, stdio, type Io } from './io.ts'

export const VERSION = '0.1.0'

export interface RunEnv {
  /** The data dir when --data is not given (bin.ts reads it from KILN_PROVIDER_DIR or HOME). */
  dataDir: string
  /** Resolves when `start` should stop; bin.ts wires SIGINT and SIGTERM to it. */
  stopSignal?: Promise<void>
  /** For programs embedding the provider (test harnesses): wraps the Docker runtime `start` builds. */
  wrapRuntime?: (runtime: DockerRuntime) => DockerRuntime
}

interface Flags {
  data: string
  marketplace?: string
  bootstrap?: string[]
  rpc?: string
  mint?: string
  price?: string
  region?: string
  listen?: string[]
  operator?: string
  dashboardPort?: string
  nvidiaSmi?: string
  dockerSocket?: string
  force?: boolean
  json?: boolean
  stopRunning?: boolean
}

const num = (s: string | undefined) => (s === undefined ? undefined : /^\d+$/.test(s) ? Number(s) : s)

function overrides(o: Flags): ConfigOverrides {
  return {
    marketplace: o.marketplace,
    bootstrap: o.bootstrap,
    rpcUrl: o.rpc,
    mint: o.mint,
    pricePerHour: num(o.price),
    region: o.region,
    listen: o.listen,
    operator: o.operator,
    dashboardPort: num(o.dashboardPort),
    nvidiaSmi: o.nvidiaSmi,
    dockerSocket: o.dockerSocket,
  }
}

/** Runs `kiln-provider` and returns its exit code; `start` returns only once stopped. */
export async function run(argv: string[], env: RunEnv, io: Io = stdio): Promise<number> {
  let code = 0
  const program = new Command('kiln-provider')
    .description("Rent out this machine's GPUs (or CPU) on the Kiln network")
    .version(VERSION)
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()) })
  const act =
    <A extends unknown[]>(fn: (...a: A) => Promise<number>) =>
    async (...a: A) => {
      code = await fn(...a)
    }
  const data = (c: Command) =>
    c.option('--data <dir>', 'data directory (keypair, config, job journal, dashboard token)', env.dataDir)
  const settings = (c: Command) =>
    data(c)
      .option('--marketplace <address>', 'the marketplace (arbiter) address to accept leases from')
      .option('--bootstrap <multiaddr...>', 'mesh nodes to join through')
      .option('--rpc <url>', 'Solana JSON-RPC URL')
      .option('--mint <address>', 'stablecoin mint')
      .option('--price <units>', 'price per hour in token base units (1000000 = 1.00)')
      .option('--region <name>', 'region to advertise')
      .option(
        '--operator <address>',
        'who runs this machine, if you run several: re-runs of a job never go to the same operator',
      )
      .option('--listen <multiaddr...>', 'mesh listen addresses')
      .option('--dashboard-port <port>', 'local dashboard port on 127.0.0.1 (0: any free port)')
      .option('--nvidia-smi <path>', 'the nvidia-smi to use')
      .option('--docker-socket <path>', 'the Docker engine socket')

  settings(program.command('init').description('create the keypair and a config file with defaults'))
    .option('--force', 'write a new config file instead of updating the existing one')
    .option('--json', 'machine-readable output')
    .action(
      act((o: Flags) =>
        init({ data: o.data, overrides: overrides(o), force: Boolean(o.force), json: Boolean(o.json) }, io),
      ),
    )
  settings(
    program.command('start').description('join the mesh, advertise capacity, run leased jobs and serve the dashboard'),
  )
    // Loaded on demand: the mesh, Docker and Solana clients cost seconds that status does not need.
    .action(
      act(async (o: Flags) =>
        (await import('./start.ts')).start(
          {
            data: o.data,
            overrides: overrides(o),
            version: VERSION,
            stopSignal: env.stopSignal ?? new Promise(() => {}),
            ...(env.wrapRuntime ? { wrapRuntime: env.wrapRuntime } : {}),
          },
          io,
        ),
      ),
    )
  data(program.command('status').description('what the running daemon is doing'))
    .option('--json', 'machine-readable output')
    .action(act((o: Flags) => status(o, io)))
  data(program.command('pause').description('take no new jobs (gamer mode)'))
    .option('--stop-running', 'also stop the running job; it is paid for the time it ran')
    .option('--json', 'machine-readable output')
    .action(act((o: Flags) => pause(o, io)))
  data(program.command('resume').description('take jobs again'))
    .option('--json', 'machine-readable output')
    .action(act((o: Flags) => resume(o, io)))
  data(program.command('price <units>').description('set the price per hour in token base units (1000000 = 1.00)'))
    .option('--json', 'machine-readable output')
    .action(act((units: string, o: Flags) => price({ ...o, units }, io)))

  try {
    await program.parseAsync(argv, { from: 'user' })
    return code
  } catch (e) {
    const ce = e as { code?: string }
    if (ce.code?.startsWith('commander.'))
      return ce.code === 'commander.helpDisplayed' || ce.code === 'commander.version' ? Exit.ok : Exit.badInput
    io.err(`kiln-provider: ${isKilnError(e) ? formatKilnError(e) : ((e as Error).stack ?? String(e))}`)
    if (isKilnError(e, 'PROVIDER_ALREADY_RUNNING')) return Exit.alreadyRunning
    return isKilnError(e, 'CONFIG_INVALID') || isKilnError(e, 'KEYPAIR_FILE_INVALID') ? Exit.config : Exit.failed
  }
}
