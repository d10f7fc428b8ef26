import type { Hardware } from '@kiln/protocol'
import {
  foreignProcesses,
  overrideAutoPause,
  processLabel,
  resumesAt,
  stepAutoPause,
  type AutoPause,
} from './auto-pause.ts'
import type { StatusView } from './control-views.ts'
import { queryComputeApps, queryGpus, type GpuProcess, type GpuStatus } from './hardware.ts'
import type { Logger } from './log.ts'
import type { DockerRuntime } from './runtime/index.ts'

export interface GpuWatchInit {
  hardware: Hardware
  /** GPUs as detected at start, with utilisation and temperature. */
  gpus?: GpuStatus[]
  nvidiaSmi: string
  autoPause: { enabled: boolean; idleMs: number; ignore: string[] }
  runtime: Pick<DockerRuntime, 'kilnPids'>
  log: Logger
}

/**
 * The GPUs as nvidia-smi last showed them (use, temperature, processes) and the auto-pause
 * they drive: a program outside Kiln's containers on a GPU pauses the provider.
 */
export function createGpuWatch(init: GpuWatchInit) {
  const { autoPause: auto, log } = init
  const cuda = init.gpus?.[0]?.cuda
  let gpus: GpuStatus[] =
    init.gpus ?? init.hardware.gpus.map((g) => ({ ...g, utilizationPct: null, temperatureC: null }))
  let procs: Array<GpuProcess & { kiln: boolean }> = []
  let foreignNow: GpuProcess[] = []
  let state: AutoPause = {}
  let problem: string | undefined
  return {
    /** Polls nvidia-smi, when there are GPUs to watch. */
    async sample(): Promise<void> {
      if (init.hardware.gpus.length === 0) return
      try {
        const [now, apps] = await Promise.all([queryGpus(init.nvidiaSmi, cuda), queryComputeApps(init.nvidiaSmi)])
        const kiln = apps.length ? await init.runtime.kilnPids().catch(() => new Set<number>()) : new Set<number>()
        gpus = now
        procs = apps.map((p) => ({ ...p, kiln: kiln.has(p.pid) }))
        foreignNow = foreignProcesses(apps, kiln, auto.ignore)
        problem = undefined
        if (!auto.enabled) return
        const next = stepAutoPause(state, foreignNow, Date.now(), auto.idleMs)
        if (next.by && !state.by)
          log.info({ pid: next.by.pid, process: next.by.name }, 'auto-paused: another program uses the GPU')
        if (!next.by && state.by) log.info({}, 'auto-resumed: the GPU was idle long enough')
        state = next
      } catch (e) {
        // A failed poll is no evidence the game has ended: the auto-pause state stays as it was.
        problem = `nvidia-smi failed: ${(e as Error).message}`
      }
    },
    pausedBy: (): GpuProcess | undefined => (auto.enabled ? state.by : undefined),
    /** The owner said go: what runs on the GPU now is ignored until it exits. True when that ended an auto-pause. */
    override(): boolean {
      if (!state.by) return false
      state = overrideAutoPause(state, foreignNow)
      return true
    },
    autoPauseView: (): StatusView['autoPause'] => ({
      enabled: auto.enabled,
      idleSec: auto.idleMs / 1000,
      by: state.by ? { pid: state.by.pid, name: processLabel(state.by) } : null,
      resumesAt: resumesAt(state, foreignNow.length, auto.idleMs) ?? null,
    }),
    view: () => ({ gpus, gpuProcesses: procs, gpuProblem: problem ?? null }),
  }
}

export type GpuWatch = ReturnType<typeof createGpuWatch>
