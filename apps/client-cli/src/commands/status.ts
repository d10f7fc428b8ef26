import pc from 'picocolors'
import { isKilnError, type MoneyFormat } from '@kiln/protocol'
import type { JobView, KilnClient, PublicJobView, VerdictView } from '@kiln/sdk'
import { assertJobId, Exit, openClient, type GlobalOpts, type Io } from '../context.ts'
import { settlementWords } from '../money.ts'

/** `kiln status <job>`: the job, its money and its history; another's job as the public sees it. */
export async function status(o: GlobalOpts & { jobId: string }, io: Io): Promise<number> {
  assertJobId(o.jobId)
  const { client } = openClient(o)
  const j = await client.get(o.jobId).catch((e: unknown) => {
    if (isKilnError(e, 'NOT_JOB_OWNER')) return undefined
    throw e
  })
  const m = await client.money()
  if (!j) return publicStatus(client, o, io, m)
  // The owner also sees the job's spot-check runs (signed request; nobody else can).
  const runs = await client.runs(j.id).catch(() => undefined)
  if (o.json) {
    io.out(JSON.stringify({ ...j, receipt: undefined, ...(runs ? { runs } : {}) }))
    return Exit.ok
  }
  const rows: [string, string][] = [
    ...common(j, m),
    ['max cost', `${m.amount(j.maxCost)} (at your max price)`],
    ['locked', m.amount(j.lock?.amount)],
    ['vault', j.lock?.vault ?? '-'],
    ['output', j.outputDigest ?? '-'],
    ...(j.settlement ? [] : [['bond', m.amount(j.bond)] as [string, string]]),
    ...settled(j, m),
  ]
  if (j.error) rows.push(['error', `${j.error.code} ${j.error.message}`])
  if (j.waiting) rows.push(['waiting', j.waiting])
  for (const [k, v] of rows) io.out(`${pc.dim(k.padEnd(11))} ${v}`)
  if (runs && runs.length > 1) {
    io.out('')
    io.out(pc.dim('runs (only you see these)'))
    for (const r of runs) {
      const w = r.settlement && settlementWords(r.settlement, m)
      io.out(
        `  ${r.role.padEnd(9)} ${r.state.padEnd(10)} ${(r.provider ?? '-').padEnd(44)} ${(r.settleOutcome ?? '-').padEnd(16)} ${w ? `paid ${w.paid}; refunded ${w.refunded}; bond ${w.bond}` : 'not settled'}`,
      )
    }
  }
  io.out('')
  for (const e of j.events)
    io.out(`${pc.dim(new Date(e.at).toISOString())} ${(e.from ?? '').padStart(9)} → ${e.to.padEnd(9)} ${e.reason}`)
  return Exit.ok
}

/** Another client's job: only what a market explorer may see. */
async function publicStatus(
  client: KilnClient,
  o: GlobalOpts & { jobId: string },
  io: Io,
  m: MoneyFormat,
): Promise<number> {
  const j = await client.publicJob(o.jobId)
  if (o.json) {
    io.out(JSON.stringify({ ...j, public: true }))
    return Exit.ok
  }
  const rows: [string, string][] = [...common(j, m), ...settled(j, m)]
  if (j.errorCode) rows.push(['error', j.errorCode])
  for (const [k, v] of rows) io.out(`${pc.dim(k.padEnd(11))} ${v}`)
  io.out(pc.dim(`\nnot your job: this is its public view (its spec, logs and outputs are its owner's)`))
  for (const e of j.events) io.out(`${pc.dim(new Date(e.at).toISOString())} ${(e.from ?? '').padStart(9)} → ${e.to}`)
  return Exit.ok
}

function common(j: PublicJobView | JobView, m: MoneyFormat): [string, string][] {
  return [
    ['job', j.id],
    ['state', j.state],
    ['image', j.image],
    ['client', j.client],
    ['provider', j.provider ?? '-'],
    ['price', m.rate(j.pricePerHour)],
  ]
}

function settled(
  j: Pick<PublicJobView, 'settlement'> & { verification: VerdictView | null },
  m: MoneyFormat,
): [string, string][] {
  const s = j.settlement
  const w = s && settlementWords(s, m)
  const rows: [string, string][] =
    s && w
      ? [
          ['paid', w.paid],
          ['refunded', w.refunded],
          ['bond', w.bond],
          ['settlement', s.signature],
        ]
      : [['settlement', '-']]
  if (j.verification) {
    const v = j.verification
    rows.push([
      'verified',
      v.verdict === 'unchecked'
        ? 'not spot-checked'
        : `${v.verdict} over ${v.runs} runs${v.caught.length ? `; caught ${v.caught.join(', ')}` : ''}${v.reason ? ` (${v.reason})` : ''}`,
    ])
  }
  return rows
}

/** `kiln logs <job>`: everything the job printed so far. */
export async function logs(o: GlobalOpts & { jobId: string }, io: Io): Promise<number> {
  assertJobId(o.jobId)
  const { client } = openClient(o)
  let after = -1
  for (;;) {
    const lines = await client.logs(o.jobId, after)
    if (lines.length === 0) break
    for (const l of lines) io.out(o.json ? JSON.stringify(l) : l.text.trimEnd())
    after = lines[lines.length - 1]!.seq
  }
  return Exit.ok
}

/** `kiln cancel <job>`: stop a job; what it ran is paid, the rest of the lock comes back. */
export async function cancel(o: GlobalOpts & { jobId: string }, io: Io): Promise<number> {
  assertJobId(o.jobId)
  const { client } = openClient(o)
  const j = await client.cancel(o.jobId)
  if (o.json) io.out(JSON.stringify({ ...j, receipt: undefined }))
  else
    io.out(
      j.state === 'cancelled'
        ? `${j.id} cancelled`
        : `${j.id} is ${j.state}${j.state === 'running' || j.state === 'locked' ? ': the provider is stopping it; its settlement follows (kiln status shows it)' : ''}`,
    )
  return Exit.ok
}
