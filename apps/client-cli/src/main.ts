import { Command } from 'commander'
import { defaultGlobals, reportError, stdio, type GlobalOpts, type Io } from './context.ts'
import { jobs, keygen, providers, whoami } from './commands/network.ts'
import { cancel, logs, status } from './commands/status.ts'
import { watch } from './commands/follow.ts'
import { quote, submit } from './commands/submit.ts'
import { recover } from './commands/vault.ts'

/** Runs the `kiln` command line and returns its exit code (never calls process.exit). */
export async function run(argv: string[], io: Io = stdio, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const d = defaultGlobals(env)
  let code = 0
  let json = false
  const program = new Command('kiln')
    .description('Run Docker workloads on the Kiln GPU network')
    .version('0.1.0')
    .option('--api <url>', 'marketplace API', d.api)
    .option('--keypair <path>', 'your keypair file (Solana format)', d.keypair)
    .option('--json', 'machine-readable output')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()) })
  const g = (): GlobalOpts => {
    const o = program.opts<GlobalOpts>()
    json = Boolean(o.json)
    return o
  }
  const act =
    <A extends unknown[]>(fn: (...a: A) => Promise<number>) =>
    async (...a: A) => {
      code = await fn(...a)
    }

  const repeat = (v: string, all: string[]) => [...all, v]
  const secretHelp =
    'a secret the spec names: NAME (its value from the environment variable NAME) or NAME=@FILE (repeatable); never the value itself'
  const registryHelp =
    'credentials for a private image: USER:@FILE (the password in FILE) or USER (the password in KILN_REGISTRY_PASSWORD)'
  type SecretFlags = { secret: string[]; registryAuth?: string }
  program
    .command('submit <file>')
    .description(
      'submit a job spec (YAML or JSON), uploading its local inputs (path:), follow it to the end and fetch its outputs',
    )
    .option('--no-wait', 'submit and return the job id')
    .option('--out <dir>', 'where outputs go', 'kiln-out')
    .option('--secret <name>', secretHelp, repeat, [] as string[])
    .option('--registry-auth <user:@file>', registryHelp)
    .action(
      act(async (file: string, o: { wait: boolean; out: string } & SecretFlags) =>
        submit({ ...g(), file, ...o }, io, env),
      ),
    )
  program
    .command('quote <file>')
    .description('what a job spec may cost, and the chance a cheating provider is caught, before paying')
    .action(act(async (file: string) => quote({ ...g(), file }, io)))
  program
    .command('watch <jobId>')
    .description(
      'take up a job again: lock its funds, co-sign what is owed to you, stream its logs and fetch its outputs',
    )
    .option('--out <dir>', 'where outputs go', 'kiln-out')
    .option('--secret <name>', secretHelp, repeat, [] as string[])
    .option('--registry-auth <user:@file>', registryHelp)
    .action(act(async (jobId: string, o: { out: string } & SecretFlags) => watch({ ...g(), jobId, ...o }, io, env)))
  program
    .command('status <jobId>')
    .description('show a job, its money and its history')
    .action(act(async (jobId: string) => status({ ...g(), jobId }, io)))
  program
    .command('cancel <jobId>')
    .description('cancel a job: a running one is stopped and paid for the seconds it ran')
    .action(act(async (jobId: string) => cancel({ ...g(), jobId }, io)))
  program
    .command('logs <jobId>')
    .description("print a job's logs")
    .action(act(async (jobId: string) => logs({ ...g(), jobId }, io)))
  program
    .command('jobs')
    .description('list your jobs')
    .option('--all', "everyone's jobs")
    .action(act(async (o: { all?: boolean }) => jobs({ ...g(), ...o }, io)))
  program
    .command('providers')
    .description('list providers online')
    .action(act(async () => providers(g(), io)))
  program
    .command('keygen')
    .description('create your keypair')
    .action(act(async () => keygen(g(), io)))
  program
    .command('whoami')
    .description('your address and balance')
    .action(act(async () => whoami(g(), io)))
  program
    .command('vault')
    .description('act on an escrow vault on the ledger, without the marketplace')
    .command('recover <vault>')
    .description(
      "empty a vault the marketplace cannot settle, signed by two of its three keys: yours (--keypair) and the provider's or the arbiter's",
    )
    .requiredOption(
      '--cosigner <path>',
      "the second signer's key file: the provider's id.json, or the marketplace's arbiter.json",
    )
    .option('--rpc <url>', 'Solana JSON-RPC endpoint', env.SOLANA_RPC_URL ?? 'http://127.0.0.1:8899')
    .option('--to <who>', 'who gets what is left: client (a refund), provider (a release) or an address', 'client')
    .option(
      '--pay <who=units>',
      'pay this first, in base units, e.g. provider=2000000 (repeatable)',
      repeat,
      [] as string[],
    )
    .action(
      act(async (vault: string, o: { cosigner: string; rpc: string; to: string; pay: string[] }) =>
        recover({ ...g(), vault, ...o }, io),
      ),
    )

  try {
    await program.parseAsync(argv, { from: 'user' })
    return code
  } catch (e) {
    const ce = e as { code?: string; exitCode?: number }
    if (ce.code?.startsWith('commander.'))
      return ce.code === 'commander.helpDisplayed' || ce.code === 'commander.version' ? 0 : 2
    return reportError(io, e, json, program.opts<GlobalOpts>())
  }
}
