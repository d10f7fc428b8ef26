import { readFileSync } from 'node:fs'
import pc from 'picocolors'
import { parse as parseYaml } from 'yaml'
import { JobSpec, KilnError, parseOrThrow, type Address, type JobSpecInput, type SecretBundle } from '@kiln/protocol'
import type { Quote } from '@kiln/sdk'
import { Exit, openClient, type GlobalOpts, type Io } from '../context.ts'
import { uploadSpecInputs, withPlaceholders } from '../inputs.ts'
import { collectSecrets } from '../secrets.ts'
import { follow, sayer } from './follow.ts'

export interface SubmitOpts extends GlobalOpts {
  file: string
  wait: boolean
  out: string
  /** --secret NAME or NAME=@FILE, repeatable (secrets.ts). */
  secret?: string[]
  registryAuth?: string
  /** Whether stderr is a terminal (a progress bar for uploads); default process.stderr.isTTY. */
  tty?: boolean
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
  // A local input (path:) is priced like any other: nothing is uploaded for a quote.
  const spec = parseOrThrow(JobSpec, withPlaceholders(readSpecFile(o.file)), `job spec ${o.file}`)
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

/**
 * `kiln submit job.yaml`: upload local inputs, submit, lock funds when matched, stream logs,
 * fetch and check outputs.
 */
export async function submit(
  o: SubmitOpts,
  io: Io,
  /** Where secret values and registry credentials are read from: main.ts passes its env. */
  env: Record<string, string | undefined> = {},
): Promise<number> {
  // Validate before anything else (keypair, network, uploads): a bad spec is named at once.
  const raw = readSpecFile(o.file)
  const checked = parseOrThrow(JobSpec, withPlaceholders(raw), `job spec ${o.file}`)
  let secrets: SecretBundle | undefined
  if (checked.secrets.length > 0 || checked.privateImage || (o.secret ?? []).length > 0 || o.registryAuth)
    secrets = collectSecrets(checked.secrets, o.secret ?? [], env, {
      image: checked.image,
      privateImage: checked.privateImage,
      registryAuth: o.registryAuth,
    })
  const { client, identity } = openClient(o)
  const say = sayer(o, io)
  // The guarantee comes before anything is paid or sent.
  const q = await client.quote(checked)
  for (const line of q.lines) say(pc.cyan('ⓘ'), line)
  const uploaded = await uploadSpecInputs(
    raw,
    o.file,
    {
      api: o.api,
      identity,
      arbiter: (await client.info()).arbiter as Address,
      json: o.json,
      tty: o.tty ?? Boolean(process.stderr.isTTY),
    },
    io,
  )
  const spec = parseOrThrow(JobSpec, uploaded, `job spec ${o.file}`)
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
  return follow(client, jobId, o, io, say, { quote: quoteJson(q), secrets })
}
