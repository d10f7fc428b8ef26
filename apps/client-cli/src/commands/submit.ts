import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import pc from 'picocolors'
import { parse as parseYaml } from 'yaml'
import { JobSpec, KilnError, parseOrThrow, type JobSpecInput } from '@kiln/protocol'
import { unpackOutput, type JobDetails, type Quote } from '@kiln/sdk'
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

/** `kiln quote job.yaml`: what the job may cost and what verification guarantees, before paying. */
export async function quote(o: GlobalOpts & { file: string }, io: Io): Promise<number> {
  const spec = parseOrThrow(JobSpec, readSpecFile(o.file), `job spec ${o.file}`)
  const q = await openClient(o).client.quote(spec)
  io.out(o.json ? JSON.stringify({ ok: true, quote: quoteJson(q) }) : q.lines.join('\n'))
  return Exit.ok
}

function quoteJson(q: Quote) {
  const g = q.guarantee
  return {
    maxCost: q.maxCost, required: q.required, p: q.p, bond: q.bond, feeBps: q.feeBps,
    detectK: g.detectK, k: g.k, expectedPenalty: g.expectedPenalty, expectedGain: g.expectedGain, cheatingPays: g.cheatingPays,
    minDeterringBond: Number.isFinite(g.minDeterringBond) ? g.minDeterringBond : null, expectedCost: g.expectedCost, lines: q.lines,
  }
}

/** `kiln submit job.yaml`: submit, lock funds when matched, stream logs, fetch and check outputs. */
export async function submit(o: SubmitOpts, io: Io): Promise<number> {
  // Validate before anything else (keypair, network): a bad spec is named at once.
  const spec = parseOrThrow(JobSpec, readSpecFile(o.file), `job spec ${o.file}`)
  const { client } = openClient(o)
  const t0 = Date.now()
  const say = (icon: string, msg: string) => { if (!o.json) io.out(`${pc.dim(`${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s`)} ${icon} ${msg}`) }
  // The guarantee comes before anything is paid.
  const q = await client.quote(spec)
  for (const line of q.lines) say(pc.cyan('ⓘ'), line)
  const { jobId, maxCost } = await client.submit(spec)
  say(pc.green('✓'), `submitted ${pc.bold(jobId)} (at most ${money(maxCost)} will be locked)`)
  if (!o.wait) {
    if (o.json) io.out(JSON.stringify({ ok: true, jobId, maxCost, quote: quoteJson(q) }))
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
    io.out(JSON.stringify({ ok: job.state === 'done', job: { ...job, receipt: undefined }, lockSignature, outputDir, files, quote: quoteJson(q) }))
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
  const bond = j.bond ?? 0
  const toProvider = (j.paidToProvider ?? 0) - (bond > 0 && (j.paidToProvider ?? 0) >= bond ? bond : 0)
  const money2 = `provider paid ${money(toProvider)}${bond > 0 ? ` (+ its bond ${money(bond)} back)` : ''}, fee ${money(j.fee ?? 0)}, refunded ${money(j.refundedToClient)}`
  const tx = j.settlementSignature ? ` — settlement tx ${j.settlementSignature}` : ''
  const v = j.verification
  const checked = v && v.verdict !== 'unchecked' ? ` — spot-checked: ${v.verdict}${v.caught.length ? `, caught ${v.caught.join(', ')} (bond paid to you)` : ''}` : ''
  if (j.state === 'done') return `done: ${money2}${tx}${checked}`
  return `${j.state}${j.error ? `: ${j.error.code} ${j.error.message}` : ''} — ${money2}${tx}`
}
