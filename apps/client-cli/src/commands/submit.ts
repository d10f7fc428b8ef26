import { readFileSync } from 'node:fs'
import pc from 'picocolors'
import { parse as parseYaml } from 'yaml'
import { JobSpec, KilnError, parseOrThrow, type JobSpecInput } from '@kiln/protocol'
import type { Quote } from '@kiln/sdk'
import { Exit, openClient, type GlobalOpts, type Io } from '../context.ts'
import { follow, sayer } from './follow.ts'

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
    throw new KilnError(
      'SPEC_FILE_UNREADABLE',
      `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      { file },
    )
  }
  try {
    return parseYaml(text) as JobSpecInput
  } catch (e) {
    throw new KilnError(
      'SPEC_FILE_UNREADABLE',
      `${file} is not valid YAML or JSON: ${(e as Error).message.split('\n')[0]}`,
      { file },
    )
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
    maxCost: q.maxCost,
    required: q.required,
    p: q.p,
    bond: q.bond,
    feeBps: q.feeBps,
    detectK: g.detectK,
    k: g.k,
    expectedPenalty: g.expectedPenalty,
    expectedGain: g.expectedGain,
    cheatingPays: g.cheatingPays,
    minDeterringBond: Number.isFinite(g.minDeterringBond) ? g.minDeterringBond : null,
    expectedCost: g.expectedCost,
    lines: q.lines,
  }
}

/** `kiln submit job.yaml`: submit, lock funds when matched, stream logs, fetch and check outputs. */
export async function submit(o: SubmitOpts, io: Io): Promise<number> {
  // Validate before anything else (keypair, network): a bad spec is named at once.
  const spec = parseOrThrow(JobSpec, readSpecFile(o.file), `job spec ${o.file}`)
  const { client } = openClient(o)
  const say = sayer(o, io)
  // The guarantee comes before anything is paid.
  const q = await client.quote(spec)
  for (const line of q.lines) say(pc.cyan('ⓘ'), line)
  const { jobId, maxCost } = await client.submit(spec)
  say(
    pc.green('✓'),
    `submitted ${pc.bold(jobId)} (lock at most ${(await client.money()).amount(maxCost)}, at your max price)`,
  )
  if (!o.wait) {
    if (o.json) io.out(JSON.stringify({ ok: true, jobId, maxCost, quote: quoteJson(q) }))
    // Funds are locked by the client's own key when a provider is found: someone has to be there.
    else
      say(
        pc.cyan('ⓘ'),
        `follow it with: kiln watch ${jobId} (it locks your funds when a provider is found, within the lock window)`,
      )
    return Exit.ok
  }
  return follow(client, jobId, o, io, say, { quote: quoteJson(q) })
}
