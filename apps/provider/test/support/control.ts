import { tokenUnitFor } from '@kiln/protocol'
import type { ControlApi } from '../../src/dashboard/server.ts'
import type { StatusView } from '../../src/control-views.ts'

/** A running, idle provider's status; `patch` changes what a test looks at. */
export function statusFixture(patch: Partial<StatusView> = {}): StatusView {
  const mint = patch.mint ?? ('testmint' as never)
  return {
    address: 'addr' as never,
    mint,
    token: tokenUnitFor(mint),
    version: '0',
    region: 'local',
    pricePerHour: 360_000,
    state: 'running',
    available: true,
    reason: null,
    pausedAt: null,
    autoPause: { enabled: true, idleSec: 300, by: null, resumesAt: null },
    docker: { ok: true, problem: null },
    recovered: true,
    network: { accepted: false, problem: 'acceptNetworkJobs is off in its config' },
    hardware: {
      cpuCores: 2,
      memoryMb: 1024,
      diskMb: 1024,
      cpuOnly: true,
      gpus: [],
      gpuProcesses: [],
      gpuProblem: null,
    },
    job: null,
    advert: null,
    peers: 0,
    earnings: { jobs: 0, paid: 0, owed: 0 },
    ...patch,
  }
}

/** The dashboard's control API over a fixed status; pause, resume and price changes are recorded in `calls`. */
export function stubControlApi(calls: string[], patch: Partial<StatusView> = {}): ControlApi {
  let price = patch.pricePerHour ?? 360_000
  const status = (): StatusView => statusFixture({ ...patch, pricePerHour: price })
  return {
    status,
    logs: () => ({ jobId: null, entries: [], next: 0, gap: false }),
    jobs: () => [],
    earnings: async () => ({
      address: 'addr' as never,
      mint: status().mint,
      balance: 0,
      balanceProblem: null,
      paid: 0,
      history: [],
    }),
    pause: async (o) => {
      calls.push(`pause:${o.stopRunning}`)
      return status()
    },
    resume: async () => {
      calls.push('resume')
      return status()
    },
    setPrice: async (p) => {
      price = p
      return status()
    },
  }
}
