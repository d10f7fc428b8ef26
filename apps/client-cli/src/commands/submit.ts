import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import pc from 'picocolors'
import { parse as parseYaml } from 'yaml'
import { JobSpec, KilnError, parseOrThrow, type JobSpecInput } from '@kiln/protocol'
import { unpackOutput, type JobDetails } from '@kiln/sdk'
import { Exit, money, openClient, type GlobalOpts, type Io } from '../context.ts'

export interface SubmitOpts extends GlobalOpts {
  file: string
  wait: boolean
  out: string
}

export function readSpecFile(file: string): JobSpecInput {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (e) {
    throw new KilnError('SPEC_FILE_UNREADABLE', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { file })
  }
  try {
    return parseYaml(text) as JobSpecInput
  } catch (e) {
    throw new KilnError('SPEC_FILE_UNREADABLE', `${file} is not valid YAML or JSON: ${(e as Error).message.split('\n')[0]}`, { file })
  }
}

/** `kiln submit job.yaml`: submit, lock funds when matched, stream logs, fetch and check outputs. */
export async function submit(o: SubmitOpts, io: Io): Promise<number> {
  // Validate before anything else (keypair, network): a bad spec is named at once.
  const spec = parseOrThrow(JobSpec, readSpecFile(o.file), `job spec ${o.file}`)
  const { client } = openClient(o)
  const t0 = Date.now()
  const say = (icon: string, msg: string) => { if (!o.json) io.out(`${pc.dim(`${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s`)} ${icon} ${msg}`) }
  const { jobId, maxCost } = await client.submit(spec)
  say(pc.green('✓'), `submitted ${pc.bold(jobId)} (at most ${money(maxCost)} will be locked)`)
  if (!o.wait) {
    if (o.json) io.out(JSON.stringify({ ok: true, jobId, maxCost }))
    return Exit.ok
  }
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
    io.out(JSON.stringify({ ok: job.state === 'done', job: { ...job, receipt: undefined }, lockSignature, outputDir, files }))
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
  const money2 = `provider paid ${money(j.paidToProvider)}, refunded ${money(j.refundedToClient)}`
  const tx = j.settlementSignature ? ` — settlement tx ${j.settlementSignature}` : ''
  if (j.state === 'done') return `done: ${money2}${tx}`
  return `${j.state}${j.error ? `: ${j.error.code} ${j.error.message}` : ''} — ${money2}${tx}`
}
