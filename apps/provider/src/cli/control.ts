import { formatRate, moneyFormat, tokenUnitFor } from '@kiln/protocol'
import { loadConfig, updateConfig } from '../config.ts'
import { connectControl } from '../control-client.ts'
import type { EarningsView, StatusView } from '../control-views.ts'
import { Exit, type Io } from './io.ts'

export interface ControlOpts {
  data: string
  json?: boolean
}

/** A summary a person reads in a terminal; --json gives the same data whole. */
export function formatStatus(s: StatusView, e?: EarningsView): string {
  const { amount: money, rate } = moneyFormat(s.token)
  const state =
    s.state === 'running'
      ? s.job
        ? 'running (busy with a job)'
        : s.available
          ? 'running (available)'
          : 'running (unavailable)'
      : s.state
  const lines = [`provider  ${s.address}`, `state     ${state}${s.reason ? ` — ${s.reason}` : ''}`]
  if (s.autoPause.resumesAt)
    lines.push(
      `          resumes by itself in ${Math.max(0, Math.round((s.autoPause.resumesAt - Date.now()) / 1000))} s`,
    )
  lines.push(`docker    ${s.docker.ok ? 'ok' : `unavailable: ${s.docker.problem}`}`)
  lines.push(
    `network   ${s.network.accepted ? 'jobs with network access taken (internet only, not this host or its LAN)' : `no jobs with network access: ${s.network.problem}`}`,
  )
  lines.push(
    `machine   ${s.hardware.cpuCores} CPU cores, ${(s.hardware.memoryMb / 1024).toFixed(1)} GiB memory, ${(s.hardware.diskMb / 1024).toFixed(0)} GiB free disk${s.hardware.cpuOnly ? ', no GPU (CPU-only provider)' : ''}`,
  )
  for (const g of s.hardware.gpus) {
    lines.push(
      `gpu ${g.index}     ${g.model}, ${(g.vramMb / 1024).toFixed(1)} GiB, ${g.utilizationPct ?? '?'}% busy, ${g.temperatureC ?? '?'} °C`,
    )
  }
  const others = s.hardware.gpuProcesses.filter((p) => !p.kiln)
  if (others.length) lines.push(`on gpu    ${others.map((p) => `${p.name} (pid ${p.pid})`).join(', ')}`)
  lines.push(
    `job       ${s.job ? `${s.job.jobId} ${s.job.image}${s.job.startedAt ? `, running ${Math.round((Date.now() - s.job.startedAt) / 1000)} s` : ', starting'}${s.job.stopping ? ' (stopping)' : ''}` : 'none'}`,
  )
  lines.push(`price     ${rate(s.pricePerHour)} (${s.pricePerHour} base units)`)
  lines.push(
    `earnings  ${money(s.earnings.paid)} paid over ${s.earnings.jobs} job(s)${s.earnings.owed ? `, ${money(s.earnings.owed)} waiting for settlement` : ''}`,
  )
  if (e) lines.push(`balance   ${e.balance === null ? `unknown (${e.balanceProblem})` : money(e.balance)} on chain`)
  return lines.join('\n')
}

async function guarded(io: Io, json: boolean | undefined, fn: () => Promise<number>): Promise<number> {
  try {
    return await fn()
  } catch (e) {
    const notRunning = (e as Error).name === 'DaemonNotRunningError'
    if (json) io.out(JSON.stringify({ ok: false, running: !notRunning, error: (e as Error).message }))
    else io.err(`kiln-provider: ${(e as Error).message}`)
    return notRunning ? Exit.notRunning : (e as { status?: number }).status === 400 ? Exit.badInput : Exit.failed
  }
}

/** `kiln-provider status`: what the running daemon is doing. */
export function status(o: ControlOpts, io: Io): Promise<number> {
  return guarded(io, o.json, async () => {
    const c = connectControl(o.data)
    const [s, e] = await Promise.all([
      c.get<StatusView>('/api/status'),
      c.get<EarningsView>('/api/earnings').catch(() => undefined),
    ])
    io.out(
      o.json
        ? JSON.stringify({ ok: true, status: s, earnings: e ? { ...e, history: e.history.slice(0, 20) } : null })
        : formatStatus(s, e),
    )
    return Exit.ok
  })
}

/** `kiln-provider pause [--stop-running]`: no new jobs (and optionally stop the running one). */
export function pause(o: ControlOpts & { stopRunning?: boolean }, io: Io): Promise<number> {
  return guarded(io, o.json, async () => {
    const s = await connectControl(o.data).post<StatusView>('/api/pause', { stopRunning: Boolean(o.stopRunning) })
    io.out(
      o.json
        ? JSON.stringify({ ok: true, status: s })
        : `paused: no new jobs${s.job?.stopping ? `; stopping ${s.job.jobId} (paid for the time it ran)` : s.job ? `; ${s.job.jobId} keeps running (use --stop-running to stop it)` : ''}`,
    )
    return Exit.ok
  })
}

/** `kiln-provider resume`: take jobs again. */
export function resume(o: ControlOpts, io: Io): Promise<number> {
  return guarded(io, o.json, async () => {
    const s = await connectControl(o.data).post<StatusView>('/api/resume', {})
    io.out(
      o.json
        ? JSON.stringify({ ok: true, status: s })
        : `resumed: ${s.available ? 'taking jobs' : `not taking jobs yet: ${s.reason}`}`,
    )
    return Exit.ok
  })
}

/**
 * `kiln-provider price <units>`: the running daemon saves it and republishes its advert; with
 * no daemon running, it goes into the config file for the next start.
 */
export function price(o: ControlOpts & { units: string }, io: Io): Promise<number> {
  return guarded(io, o.json, async () => {
    const units = Number(o.units)
    if (!/^\d+$/.test(o.units) || !Number.isSafeInteger(units) || units < 1) {
      io.err('kiln-provider: the price is a whole number of token base units per hour, at least 1 (1000000 = 1.00)')
      return Exit.badInput
    }
    try {
      const s = await connectControl(o.data).post<StatusView>('/api/price', { pricePerHour: units })
      io.out(
        o.json
          ? JSON.stringify({ ok: true, status: s })
          : `price set to ${formatRate(units, s.token)}; the advert is republished`,
      )
    } catch (e) {
      if ((e as Error).name !== 'DaemonNotRunningError') throw e
      const path = updateConfig(o.data, { pricePerHour: units })
      // The config names the mint, and so the unit; one not set up yet shows the test unit.
      const mint = (() => {
        try {
          return loadConfig(o.data).mint
        } catch {
          return ''
        }
      })()
      io.out(
        o.json
          ? JSON.stringify({ ok: true, saved: path, running: false })
          : `price set to ${formatRate(units, tokenUnitFor(mint))} in ${path}; no daemon is running, so it applies at the next start`,
      )
    }
    return Exit.ok
  })
}
