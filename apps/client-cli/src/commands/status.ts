import pc from 'picocolors'
import { Exit, money, openClient, type GlobalOpts, type Io } from '../context.ts'

/** `kiln status <job>`: the job, its money and its history. */
export async function status(o: GlobalOpts & { jobId: string }, io: Io): Promise<number> {
  const { client } = openClient(o)
  const j = await client.get(o.jobId)
  // The owner also sees the job's spot-check runs (signed request; nobody else can).
  const runs = j.client === client.address ? await client.runs(j.id).catch(() => undefined) : undefined
  if (o.json) {
    io.out(JSON.stringify({ ...j, receipt: undefined, ...(runs ? { runs } : {}) }))
    return Exit.ok
  }
  const rows: [string, string][] = [
    ['job', j.id], ['state', j.state], ['image', j.image], ['client', j.client], ['provider', j.provider ?? '-'],
    ['price/h', money(j.pricePerHour)], ['max cost', money(j.maxCost)], ['locked', money(j.lock?.amount)],
    ['vault', j.lock?.vault ?? '-'], ['output', j.outputDigest ?? '-'], ['paid', money(j.paidToProvider)],
    ['refunded', money(j.refundedToClient)], ['bond', money(j.bond)], ['fee', money(j.fee)], ['settlement', j.settlementSignature ?? '-'],
  ]
  if (j.verification) {
    const v = j.verification
    rows.push(['verified', v.verdict === 'unchecked' ? 'not spot-checked' : `${v.verdict} over ${v.runs} runs${v.caught.length ? `; caught ${v.caught.join(', ')}` : ''}${v.reason ? ` (${v.reason})` : ''}`])
  }
  if (j.error) rows.push(['error', `${j.error.code} ${j.error.message}`])
  if (j.waiting) rows.push(['waiting', j.waiting])
  for (const [k, v] of rows) io.out(`${pc.dim(k.padEnd(11))} ${v}`)
  if (runs && runs.length > 1) {
    io.out('')
    io.out(pc.dim('runs (only you see these)'))
    for (const r of runs) io.out(`  ${r.role.padEnd(9)} ${r.state.padEnd(10)} ${(r.provider ?? '-').padEnd(44)} ${(r.settleOutcome ?? '-').padEnd(16)} paid ${money(r.paidToProvider)} refunded ${money(r.refundedToClient)}`)
  }
  io.out('')
  for (const e of j.events) io.out(`${pc.dim(new Date(e.at).toISOString())} ${(e.from ?? '').padStart(9)} → ${e.to.padEnd(9)} ${e.reason}`)
  return Exit.ok
}

/** `kiln logs <job>`: everything the job printed so far. */
export async function logs(o: GlobalOpts & { jobId: string }, io: Io): Promise<number> {
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
  const { client } = openClient(o)
  const j = await client.cancel(o.jobId)
  if (o.json) io.out(JSON.stringify({ ...j, receipt: undefined }))
  else io.out(j.state === 'cancelled' ? `${j.id} cancelled` : `${j.id} is ${j.state}${j.state === 'running' || j.state === 'locked' ? ': the provider is stopping it; its settlement follows (kiln status shows it)' : ''}`)
  return Exit.ok
}
