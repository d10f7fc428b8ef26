/**
 * `npm run bench:mesh`: N real provider daemons and one marketplace on loopback, every one its
 * own process. Per N: how long until all N are in the marketplace's inventory, how long until
 * a killed (SIGKILL) and a hung (SIGSTOP) provider leave it; then, in this process, how many
 * signed adverts per second one node verifies. Sizes: BENCH_MESH_SIZES (default 10,25,50).
 */
import { availableParallelism, freemem, loadavg, totalmem } from 'node:os'
import { readFileSync } from 'node:fs'
import { killAll, type Part } from './support/procs.ts'
import { InventoryWatch, startBase, startMarket, startProviders, type Base } from './support/mesh-net.ts'
import { measureVerifyRate } from './support/verify-rate.ts'

const SIZES = (process.env.BENCH_MESH_SIZES ?? '10,25,50')
  .split(',')
  .map(Number)
  .filter((n) => n >= 3)
// Concurrent provider starts: each is a tsx process that spends seconds of CPU loading code.
const BATCH = Number(process.env.BENCH_MESH_BATCH ?? 5)
const SEEDS = 2
/** Memory a provider process needs at most, before one round has measured it. */
const FIRST_GUESS_RSS_MB = 250
/** Sizes above this are tried only when the last round's providers at rest leave room for them. */
const REQUIRED_UP_TO = 25
const MAX_IDLE_SHARE = 0.6

interface Round {
  n: number
  startAllMs: number
  convergeMs: number
  spawnToInvMs: number
  joinP50: number
  joinMax: number
  killMs: number
  hangMs: number
  othersKept: number
  /** Times a provider dropped out of the inventory before any was killed (flapping). */
  losses: number
  slowest: string
  rssMb: number
  /** Mean CPU % of one provider at rest, and the marketplace's. */
  idleCpu: number
  marketCpu: number
}

const out = (s: string) => process.stdout.write(`${s}\n`)
const q = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? NaN
/** CPU seconds (user + system) a process has used so far; clock ticks are 100 per second on Linux. */
const cpuSec = (pid: number) => {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []
    return (Number(f[11]) + Number(f[12])) / 100
  } catch {
    return 0
  }
}
const rssMb = (pid: number) => {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024
  } catch {
    return 0
  }
}

async function round(base: Base, n: number): Promise<Round> {
  const name = `n${n}`
  const market = await startMarket(base, name)
  const watch = new InventoryWatch(market.api)
  let providers: Part[] = []
  try {
    const t0 = performance.now()
    let ready = 0
    providers = await startProviders(base, market, name, n, {
      batch: BATCH,
      seeds: SEEDS,
      onReady: () => {
        if (++ready % 5 === 0 || ready === n) process.stdout.write(`  ${name}: ${ready}/${n} providers ready\r`)
      },
    })
    out('')
    const lastReady = Math.max(...providers.map((p) => p.readyAt))
    const addrs = providers.map((p) => String(p.info.address))
    const allIn = await watch.until(
      (inv) => addrs.every((a) => inv.has(a)),
      60_000,
      `all ${n} providers in the inventory`,
    )
    // Per provider: ready line to first seen in the inventory (negative: its first advert got
    // there before its ready line did).
    const joins = providers.map((p) => (watch.firstSeen.get(String(p.info.address)) ?? allIn) - p.readyAt)
    const slowest = providers
      .map((p, i) => ({ name: p.name.replace(`${name}-`, ''), ms: joins[i] ?? 0 }))
      .sort((a, b) => b.ms - a.ms)
      .slice(0, 3)
      .map((j) => `${j.name} ${j.ms.toFixed(0)} ms`)
      .join(', ')
    const rss = providers.map((p) => rssMb(p.pid))

    // What a provider costs at rest (adverts, gossip heartbeats, beats, DHT, its own checks):
    // CPU over 5 s, once the startup storm has died down. The marketplace's share includes
    // answering our polls.
    await new Promise((r) => setTimeout(r, 5_000))
    const pids = [market.part.pid, ...providers.map((p) => p.pid)]
    const cpu0 = pids.map(cpuSec)
    const tc = performance.now()
    await new Promise((r) => setTimeout(r, 5_000))
    const cpuPct = pids.map((pid, i) => (100 * (cpuSec(pid) - (cpu0[i] ?? 0))) / ((performance.now() - tc) / 1000))
    const killed = providers[Math.floor(n / 2)] as Part
    const hung = providers[Math.floor(n / 2) + 1] as Part
    const killedAddr = String(killed.info.address)
    const hungAddr = String(hung.info.address)
    await watch.until(
      (inv) => inv.has(killedAddr) && inv.has(hungAddr),
      30_000,
      'both victims in the inventory before the kill',
    )
    const losses = watch.losses

    let t = performance.now()
    killed.child.kill('SIGKILL')
    const killMs = (await watch.until((inv) => !inv.has(killedAddr), 60_000, 'the killed provider to leave')) - t

    t = performance.now()
    hung.child.kill('SIGSTOP')
    const hangMs = (await watch.until((inv) => !inv.has(hungAddr), 60_000, 'the hung provider to leave')) - t
    hung.child.kill('SIGKILL')

    // The others must still be there: losing two peers must not cost anyone else its place.
    await new Promise((r) => setTimeout(r, 500))
    const othersKept = addrs.filter((a) => a !== killedAddr && a !== hungAddr && watch.current.has(a)).length
    return {
      n,
      startAllMs: lastReady - t0,
      convergeMs: Math.max(0, allIn - lastReady),
      spawnToInvMs: allIn - t0,
      joinP50: q(joins, 0.5),
      joinMax: Math.max(...joins),
      killMs,
      hangMs,
      othersKept,
      losses,
      slowest,
      rssMb: rss.reduce((a, b) => a + b, 0) / rss.length,
      idleCpu: cpuPct.slice(1).reduce((a, b) => a + b, 0) / n,
      marketCpu: cpuPct[0] ?? 0,
    }
  } finally {
    await watch.stop()
    await Promise.all(providers.filter(Boolean).map((p) => p.stop(2_000)))
    await market.part.stop()
  }
}

const results: Round[] = []
const skipped: string[] = []
const base = await startBase()
try {
  for (const n of SIZES) {
    // Room for n more providers, with what the last round measured per process and a margin.
    const perProc = results.at(-1)?.rssMb ?? FIRST_GUESS_RSS_MB
    const needMb = n * perProc * 1.5
    if (freemem() / 2 ** 20 < needMb) {
      skipped.push(
        `n=${n}: needs ~${needMb.toFixed(0)} MiB (${perProc.toFixed(0)} MiB per provider x1.5), ${(freemem() / 2 ** 20).toFixed(0)} MiB free`,
      )
      break
    }
    // And CPU: the last round's providers at rest, n of them, must leave room for the rest.
    const last = results.at(-1)
    if (last !== undefined && n > REQUIRED_UP_TO) {
      const idle = (n * last.idleCpu + last.marketCpu) / 100
      if (idle > MAX_IDLE_SHARE * availableParallelism()) {
        skipped.push(
          `n=${n}: at rest alone ${n} providers would use ~${idle.toFixed(1)} of ${availableParallelism()} cores (${last.idleCpu.toFixed(1)}% each at n=${last.n}); with ${n} tsx processes starting beside them the machine is saturated and the numbers measure it, not the mesh (BENCH_MESH_SIZES=${n} runs it anyway)`,
        )
        break
      }
    }
    out(`round n=${n} (batch ${BATCH}, load ${loadavg()[0]?.toFixed(1)})`)
    try {
      const r = await round(base, n)
      results.push(r)
      out(
        `  converge ${r.convergeMs.toFixed(0)} ms after the last ready line; spawn→all in inventory ${r.spawnToInvMs.toFixed(0)} ms; kill ${r.killMs.toFixed(0)} ms; hang ${r.hangMs.toFixed(0)} ms`,
      )
      out(`  slowest joins (ready line → inventory): ${r.slowest}; drop-outs before the kill: ${r.losses}`)
    } catch (e) {
      skipped.push(`n=${n}: ${(e as Error).message}`)
      break
    }
  }
} finally {
  await base.stop().catch(() => {})
  killAll()
}

out('measuring advert verification in this process…')
const v = measureVerifyRate()

const pad = (s: string | number, w: number) => String(s).padStart(w)
out('')
out(
  `${'n'.padStart(4)} ${'start_all'.padStart(10)} ${'converge'.padStart(9)} ${'spawn→inv'.padStart(10)} ${'join_p50'.padStart(9)} ${'join_max'.padStart(9)} ${'kill'.padStart(7)} ${'hang'.padStart(7)} ${'kept'.padStart(6)} ${'rss/proc'.padStart(9)} ${'cpu/proc'.padStart(9)} ${'cpu_mkt'.padStart(8)}`,
)
for (const r of results) {
  out(
    `${pad(r.n, 4)} ${pad(`${r.startAllMs.toFixed(0)}ms`, 10)} ${pad(`${r.convergeMs.toFixed(0)}ms`, 9)} ${pad(`${r.spawnToInvMs.toFixed(0)}ms`, 10)} ${pad(`${r.joinP50.toFixed(0)}ms`, 9)} ${pad(`${r.joinMax.toFixed(0)}ms`, 9)} ${pad(`${r.killMs.toFixed(0)}ms`, 7)} ${pad(`${r.hangMs.toFixed(0)}ms`, 7)} ${pad(`${r.othersKept}/${r.n - 2}`, 6)} ${pad(`${r.rssMb.toFixed(0)}MiB`, 9)} ${pad(`${r.idleCpu.toFixed(1)}%`, 9)} ${pad(`${r.marketCpu.toFixed(1)}%`, 8)}`,
  )
}
out('  start_all: first spawn → last ready line; converge: last ready line → all n in the inventory;')
out("  join: each provider's ready line → first seen in the inventory (negative: its advert beat its ready line)")
out('  cpu/proc, cpu_mkt: CPU of one provider / the marketplace at rest, 5-10 s after convergence (100% = one core)')
for (const s of skipped) out(`not run: ${s}`)
out(
  `memory: ${(totalmem() / 2 ** 30).toFixed(1)} GiB total, ${(freemem() / 2 ** 30).toFixed(1)} GiB free now; load ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}`,
)
out(
  `advert verification (${v.adverts} adverts from ${v.signers} keys, ${v.bytesPerAdvert} B each): gate ${v.gatePerSec}/s, raw crypto.verify ${v.rawPerSec}/s, gate/raw ${(v.gatePerSec / v.rawPerSec).toFixed(2)}`,
)
const last = results.at(-1)
if (last === undefined) {
  out('mesh: no round completed')
  process.exitCode = 1
} else {
  out(
    `mesh: n=${last.n} converge_ms=${last.convergeMs.toFixed(0)} kill_detect_ms=${last.killMs.toFixed(0)} hang_detect_ms=${last.hangMs.toFixed(0)} adverts_per_s=${v.gatePerSec}`,
  )
}
