import { mkdirSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import pc from 'picocolors'
import { unpackOutput, type JobDetails, type KilnClient } from '@kiln/sdk'
import { Exit, money, openClient, type GlobalOpts, type Io } from '../context.ts'

export type Say = (icon: string, msg: string) => void

/** Progress lines with the seconds since the command started (none under --json). */
export function sayer(o: GlobalOpts, io: Io): Say {
  const t0 = Date.now()
  return (icon, msg) => { if (!o.json) io.out(`${pc.dim(`${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s`)} ${icon} ${msg}`) }
}

/**
 * `kiln watch <job>`: take up a job again (after `submit --no-wait`, a closed terminal or a
 * lost connection). It locks the funds of any run waiting for them, co-signs refunds and
 * slashes owed to you (a caught provider's bond is paid only with your signature), streams the
 * logs and fetches the checked output. On a finished job it collects what is still owed.
 */
export async function watch(o: GlobalOpts & { jobId: string; out: string }, io: Io): Promise<number> {
  const { client } = openClient(o)
  // Only the owner can read the job whole (the marketplace refuses anyone else with NOT_JOB_OWNER).
  const job = await client.get(o.jobId)
  return follow(client, job.id, o, io, sayer(o, io))
}

/** Follows a job to its end: locks, co-signatures, logs, the checked output, a summary. */
export async function follow(client: KilnClient, jobId: string, o: GlobalOpts & { out: string }, io: Io, say: Say, extra: Record<string, unknown> = {}): Promise<number> {
  let lockSignature: string | undefined
  const job = await client.watch(jobId, {
    onState: (j) => describe(j, say),
    onLocked: (sig, j) => { lockSignature = sig; say(pc.green('✓'), `locked ${money(j.lock?.amount)} in escrow vault ${j.lock?.vault} (tx ${sig})`) },
    onLog: (l) => {
      if (o.json) return
      for (const line of l.text.trimEnd().split('\n')) io.out(`${pc.dim('│')} ${l.stream === 'stderr' ? pc.yellow(line) : line}`)
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
    say(pc.green('✓'), `output ${job.outputDigest} verified (${tar.byteLength} bytes, ${files} files) → ${join(outputDir, 'out')}`)
  }
  if (o.json) {
    io.out(JSON.stringify({ ok: job.state === 'done', job: { ...job, receipt: undefined }, lockSignature, outputDir, files, ...extra }))
  } else {
    say(job.state === 'done' ? pc.green('✓') : pc.red('✗'), summary(job))
  }
  return job.state === 'done' ? Exit.ok : Exit.jobFailed
}

function describe(j: JobDetails, say: (icon: string, msg: string) => void): void {
  switch (j.state) {
    case 'queued': {
      const where = j.queuePosition ? ` (position ${j.queuePosition}${j.estimatedWaitMs ? `, about ${Math.ceil(j.estimatedWaitMs / 1000)} s` : ''})` : ''
      say('…', `${j.waiting ? `queued: ${j.waiting}` : 'queued, looking for a provider'}${where}`)
      break
    }
    case 'matched': say(pc.green('✓'), `matched provider ${j.provider} at ${money(j.pricePerHour)}/h`); break
    case 'locked': say(pc.green('✓'), 'escrow confirmed on chain by the marketplace; lease sent'); break
    case 'running': say(pc.cyan('▶'), `running ${j.image}`); break
    case 'verifying': say('…', 'verifying the signed receipt against the output'); break
    case 'settling': say('…', j.error ? `run failed (${j.error.code} ${j.error.message}); settling` : 'receipt verified; settling on chain'); break
    default: break
  }
}

function summary(j: JobDetails): string {
  const m = j.settlement
  const money2 = m
    ? `provider paid ${money(m.toProviderForWork)}${m.bondReturned ? ` (+ its bond ${money(m.bondReturned)} back)` : ''}, fee ${money(m.fee)}, refunded ${money(m.refunded)}${m.bondSlashed ? ` + the provider's slashed bond ${money(m.bondSlashed)}` : ''}`
    : 'nothing settled'
  const tx = j.settlementSignature ? ` — settlement tx ${j.settlementSignature}` : ''
  const v = j.verification
  const checked = v && v.verdict !== 'unchecked' ? ` — spot-checked: ${v.verdict}${v.caught.length ? `, caught ${v.caught.join(', ')} (bond paid to you)` : ''}` : ''
  if (j.state === 'done') return `done: ${money2}${tx}${checked}`
  return `${j.state}${j.error ? `: ${j.error.code} ${j.error.message}` : ''} — ${money2}${tx}`
}
