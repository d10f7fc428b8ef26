import { mkdirSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import pc from 'picocolors'
import { maxLeaseCost, TERMINAL_STATES, type MoneyFormat, type SecretBundle } from '@kiln/protocol'
import { unpackOutput, type JobDetails, type KilnClient } from '@kiln/sdk'
import { assertJobId, Exit, openClient, type GlobalOpts, type Io } from '../context.ts'
import { settlementWords } from '../money.ts'
import { collectSecrets } from '../secrets.ts'

export type Say = (icon: string, msg: string) => void

/** Progress lines with the seconds since the command started (none under --json). */
export function sayer(o: GlobalOpts, io: Io): Say {
  const t0 = Date.now()
  return (icon, msg) => {
    if (!o.json) io.out(`${pc.dim(`${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s`)} ${icon} ${msg}`)
  }
}

/**
 * `kiln watch <job>`: take up a job again (after `submit --no-wait`, a closed terminal or a
 * lost connection). It locks the funds of any run waiting for them, co-signs refunds and
 * slashes owed to you (a caught provider's bond is paid only with your signature), streams the
 * logs and fetches the checked output. On a finished job it collects what is still owed.
 *
 * A job whose spec names secrets needs their values again to lock a run (each run's are sealed
 * to its own provider): `--secret NAME` or `--secret NAME=@FILE`, or the environment variable
 * NAME; registry credentials as `kiln submit` takes them (collectSecrets).
 */
export async function watch(
  o: GlobalOpts & { jobId: string; out: string; secret?: string[]; registryAuth?: string },
  io: Io,
  /** Where secret values and registry credentials are read from: main.ts passes its env. */
  env: Record<string, string | undefined> = {},
): Promise<number> {
  const { client } = openClient(o)
  // Only the owner can read the job whole (the marketplace refuses anyone else with NOT_JOB_OWNER).
  const job = await client.get(assertJobId(o.jobId))
  let secrets: SecretBundle | undefined
  if (job.spec.secrets.length > 0 || job.spec.privateImage) {
    try {
      secrets = collectSecrets(job.spec.secrets, o.secret ?? [], env, {
        image: job.spec.image,
        privateImage: job.spec.privateImage,
        registryAuth: o.registryAuth,
      })
    } catch (e) {
      // A job that has ended locks nothing more: what is still owed is collected without them.
      if (!TERMINAL_STATES.includes(job.state)) throw e
    }
  }
  return follow(client, job.id, o, io, sayer(o, io), { secrets })
}

/** Follows a job to its end: locks, co-signatures, logs, the checked output, a summary. */
export async function follow(
  client: KilnClient,
  jobId: string,
  o: GlobalOpts & { out: string },
  io: Io,
  say: Say,
  extra: { secrets?: SecretBundle } & Record<string, unknown> = {},
): Promise<number> {
  // The secrets go to the locks only: the rest of `extra` is shown in the --json summary.
  const { secrets, ...shown } = extra
  let lockSignature: string | undefined
  const m = await client.money()
  const job = await client.watch(jobId, {
    secrets,
    onState: (j) => {
      const line = stateLine(j, m)
      if (line) say(...line)
    },
    // The run's own lock: the job as last read may not show it yet (its lock window opens after the match).
    onLocked: (sig, _j, lock) => {
      lockSignature = sig
      say(pc.green('✓'), `locked ${m.amount(lock.amount)} in escrow vault ${lock.vault} (tx ${sig})`)
    },
    onLog: (l) => {
      if (o.json) return
      for (const line of l.text.trimEnd().split('\n'))
        io.out(`${pc.dim('│')} ${l.stream === 'stderr' ? pc.yellow(line) : line}`)
    },
  })
  let outputDir: string | undefined
  let files = 0
  if (job.outputDigest) {
    const tar = await client.download(job.outputDigest)
    outputDir = resolve(o.out, job.id)
    mkdirSync(outputDir, { recursive: true })
    writeFileSync(join(outputDir, `${job.outputDigest}.tar`), tar)
    files = (await unpackOutput(tar, join(outputDir, 'out'))).files
    say(
      pc.green('✓'),
      `output ${job.outputDigest} verified (${tar.byteLength} bytes, ${files} files) → ${join(outputDir, 'out')}`,
    )
  }
  if (o.json) {
    io.out(
      JSON.stringify({
        ok: job.state === 'done',
        job: { ...job, receipt: undefined },
        lockSignature,
        outputDir,
        files,
        ...shown,
      }),
    )
  } else {
    say(job.state === 'done' ? pc.green('✓') : pc.red('✗'), summary(job, m))
  }
  return job.state === 'done' ? Exit.ok : Exit.jobFailed
}

/** What a state the job entered means for the client, in one line; null where the summary says it. */
export function stateLine(j: JobDetails, m: MoneyFormat): [icon: string, msg: string] | null {
  switch (j.state) {
    case 'queued': {
      const where = j.queuePosition
        ? ` (position ${j.queuePosition}${j.estimatedWaitMs ? `, about ${Math.ceil(j.estimatedWaitMs / 1000)} s` : ''})`
        : ''
      return ['…', `${j.waiting ? `queued: ${j.waiting}` : 'queued, looking for a provider'}${where}`]
    }
    case 'matched': {
      // The provider's price, not the client's ceiling, sets the lock and the bond (the quote showed their most).
      const lock = j.lock?.amount ?? (j.pricePerHour === null ? null : maxLeaseCost(j.pricePerHour, j.spec.timeoutSec))
      return [
        pc.green('✓'),
        `matched provider ${j.provider} at ${m.rate(j.pricePerHour)} (your max ${m.rate(j.spec.maxPricePerHour)}): lock ${m.amount(lock)} for ${j.spec.timeoutSec} s, its bond ${m.amount(j.bond)}`,
      ]
    }
    case 'locked':
      return [pc.green('✓'), 'the marketplace found your lock in the vault on chain; lease sent to the provider']
    case 'running':
      return [pc.cyan('▶'), `running ${j.image}`]
    case 'verifying':
      return ['…', 'the signed receipt checks out (signature, output digest); checking the result']
    case 'settling':
      return ['…', settling(j)]
    default:
      return null
  }
}

/** What the settlement under way does, from how the run ended: a refund never says a receipt was verified. */
function settling(j: JobDetails): string {
  const why = j.error ? ` (${j.error.code} ${j.error.message})` : ''
  switch (j.settleOutcome) {
    case 'verified':
      return 'result accepted: paying the provider for the seconds it ran and refunding the rest of your lock, on chain'
    case 'failed_client':
      return `your program failed${why}: paying the provider for the seconds it ran and refunding the rest of your lock, on chain`
    case 'cancelled':
      return j.settleAction === 'refund'
        ? 'cancelled before it ran: refunding your lock in full, on chain'
        : 'cancelled: paying for the seconds it ran and refunding the rest of your lock, on chain'
    case 'caught':
      return "caught: independent runs outvoted this provider's result; refunding your lock and slashing its bond to you, on chain"
    case 'failed_provider':
    case 'timeout':
      return `the run did not deliver${why}: refunding your lock in full, on chain${j.settleAction === 'refund_requeue' ? '; the job then goes to another provider' : ''}`
    default:
      return 'settling on chain'
  }
}

function summary(j: JobDetails, m: MoneyFormat): string {
  const w = j.settlement && settlementWords(j.settlement, m)
  const money = w
    ? `paid ${w.paid}; refunded ${w.refunded}; bond ${w.bond}`
    : j.lockSignature
      ? 'not settled yet'
      : 'nothing was locked'
  const tx = j.settlementSignature ? ` — settlement tx ${j.settlementSignature}` : ''
  const v = j.verification
  const checked =
    v && v.verdict !== 'unchecked'
      ? ` — spot-checked: ${v.verdict}${v.caught.length ? `, caught ${v.caught.join(', ')} (its bond slashed to you)` : ''}`
      : ''
  if (j.state === 'done') return `done: ${money}${tx}${checked}`
  return `${j.state}${j.error ? `: ${j.error.code} ${j.error.message}` : ''} — ${money}${tx}`
}
