'use client'
import { useEffect, useState } from 'react'
import type { ProviderView, PublicJobView } from '@kiln/api'
import type { TokenUnit } from '@kiln/protocol/money'
import { api, money, short } from './api.ts'

/** The live network: who is online with what, and every job with its settlement. */
export default function Home() {
  const [providers, setProviders] = useState<ProviderView[]>([])
  const [jobs, setJobs] = useState<PublicJobView[]>([])
  const [error, setError] = useState<string | null>(null)
  const [unit, setUnit] = useState<TokenUnit | null>(null)
  useEffect(() => {
    let alive = true
    // The marketplace's unit does not change while it runs: asked once.
    let known: TokenUnit | null = null
    const tick = async () => {
      try {
        const [p, j, i] = await Promise.all([
          api.network.providers.query(),
          api.jobs.list.query({ limit: 50 }),
          known ?? api.network.info.query().then((n) => n.token),
        ])
        known = i
        if (alive) {
          setProviders(p)
          setJobs(j)
          setUnit(i)
          setError(null)
        }
      } catch (e) {
        if (alive) setError((e as Error).message)
      }
    }
    void tick()
    const t = setInterval(() => void tick(), 2000)
    return () => {
      alive = false
      clearInterval(t)
    }
  }, [])
  const cores = providers.reduce((n, p) => n + p.hardware.cpuCores, 0)
  const gpus = providers.reduce((n, p) => n + p.hardware.gpus.length, 0)
  const available = providers.filter((p) => p.available).length
  const settled = jobs.filter((j) => j.settlement)
  return (
    <>
      {error && <section className="bad">API unreachable: {error}</section>}
      <section className="stats" data-testid="stats">
        <div>
          <b data-testid="provider-count">{providers.length}</b>
          <span className="muted">providers online</span>
        </div>
        <div>
          <b>{available}</b>
          <span className="muted">available</span>
        </div>
        <div>
          <b>{gpus}</b>
          <span className="muted">GPUs</span>
        </div>
        <div>
          <b>{cores}</b>
          <span className="muted">CPU cores</span>
        </div>
        <div>
          <b data-testid="job-count">{jobs.length}</b>
          <span className="muted">recent jobs</span>
        </div>
        <div>
          <b>
            {money(
              settled.reduce((n, j) => n + (j.settlement?.work ?? 0), 0),
              unit,
            )}
          </b>
          <span className="muted">paid for work</span>
        </div>
      </section>
      <section>
        <h2>Providers</h2>
        <table data-testid="providers">
          <thead>
            <tr>
              <th>provider</th>
              <th>region</th>
              <th>hardware</th>
              <th>price / h</th>
              <th>reputation</th>
              <th>load</th>
              <th>state</th>
            </tr>
          </thead>
          <tbody>
            {providers.map((p) => (
              <tr key={p.address}>
                <td className="mono" title={p.address}>
                  {short(p.address)}
                </td>
                <td>{p.region}</td>
                <td>
                  {p.hardware.gpus.length
                    ? p.hardware.gpus.map((g) => `${g.model} ${Math.round(g.vramMb / 1024)} GiB`).join(', ')
                    : 'CPU only'}{' '}
                  · {p.hardware.cpuCores} cores · {(p.hardware.memoryMb / 1024).toFixed(0)} GiB
                </td>
                <td>{money(p.pricePerHour, unit)}</td>
                <td title="from signed receipts, decaying with time; 0.50 for a newcomer">{p.reputation.toFixed(2)}</td>
                <td>
                  <div className="bar" title={`${p.free.cpu} of ${p.hardware.cpuCores} cores free`}>
                    <span
                      style={{ width: `${Math.round(100 * (1 - p.free.cpu / Math.max(1, p.hardware.cpuCores)))}%` }}
                    />
                  </div>
                </td>
                {p.suspended ? (
                  <td
                    className="bad"
                    title="its reputation is below the marketplace's floor (a provider caught cheating stays there for months)"
                  >
                    suspended
                  </td>
                ) : (
                  <td className={p.available ? 'ok' : 'muted'}>{p.available ? 'available' : (p.reason ?? 'busy')}</td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      </section>
      <section>
        <h2>Jobs</h2>
        <table data-testid="jobs">
          <thead>
            <tr>
              <th>job</th>
              <th>image</th>
              <th>state</th>
              <th>provider</th>
              <th>checked</th>
              <th title="what the client paid for the work; the fee comes out of it">paid</th>
              <th>fee</th>
              <th>refunded</th>
              <th>provider's bond</th>
              <th>settlement tx</th>
            </tr>
          </thead>
          <tbody>
            {jobs.map((j) => (
              <tr key={j.id}>
                <td className="mono">{j.id}</td>
                <td>{j.image}</td>
                <td className={`state-${j.state}`}>
                  {j.state}
                  {j.errorCode ? ` · ${j.errorCode}` : ''}
                </td>
                <td className="mono" title={j.provider ?? ''}>
                  {short(j.provider)}
                </td>
                <td className={j.verification?.caught.length ? 'bad' : ''}>{checked(j.verification)}</td>
                <td title={j.settlement ? `${money(j.settlement.toProviderForWork, unit)} to the provider` : ''}>
                  {money(j.settlement?.work, unit)}
                </td>
                <td>{money(j.settlement?.fee, unit)}</td>
                <td>{money(j.settlement?.refunded, unit)}</td>
                <td className={j.settlement?.bondSlashed ? 'bad' : ''}>{bond(j.settlement, unit)}</td>
                <td className="mono" title={j.settlement?.signature ?? ''}>
                  {short(j.settlement?.signature, 10)}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
    </>
  )
}

/** What independent re-runs showed, once the job has ended (nothing is shown while it may still be checked). */
function checked(v: PublicJobView['verification']): string {
  if (!v) return ''
  if (v.verdict === 'unchecked') return '—'
  if (v.verdict === 'decided') return `✗ caught ${v.caught.length}`
  return v.verdict === 'agree' ? `✓ ${v.runs} runs agree` : '? inconclusive'
}

/** The bond is not pay: say where it went. */
function bond(s: PublicJobView['settlement'], unit: TokenUnit | null): string {
  if (!s) return '–'
  if (s.bondSlashed) return `${money(s.bondSlashed, unit)} slashed to the client`
  return s.bondReturned ? `${money(s.bondReturned, unit)} returned` : 'none'
}
