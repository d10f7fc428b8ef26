import { spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream, mkdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'

export const ROOT = resolve(import.meta.dirname, '..', '..')

/** Every child this benchmark started; all are SIGKILLed when the bench exits for any reason. */
const live = new Set<ChildProcess>()
let hooked = false

function hookExit(): void {
  if (hooked) return
  hooked = true
  // 'exit' handlers must be synchronous, hence SIGKILL (and SIGCONT for a stopped one,
  // which a pending SIGKILL does not need, but a stopped process shows up oddly in ps until then).
  process.on('exit', () => killAll())
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      killAll()
      process.exit(130)
    })
  }
}

/** Registers a child for the exit-time cleanup. */
export function track(child: ChildProcess): ChildProcess {
  hookExit()
  live.add(child)
  child.once('exit', () => live.delete(child))
  return child
}

export function killAll(): void {
  for (const c of live) {
    try {
      c.kill('SIGCONT')
      c.kill('SIGKILL')
    } catch {
      /* already gone */
    }
  }
  live.clear()
}

export interface Part {
  name: string
  child: ChildProcess
  pid: number
  /** The first JSON line the part printed on stdout. */
  info: Record<string, unknown>
  /** performance.now() when that line was read. */
  readyAt: number
  spawnedAt: number
  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>
}

/** Spawns a command, tracks it for cleanup at once, and resolves on its first JSON stdout line. */
export async function spawnReady(
  name: string,
  cmd: string,
  args: string[],
  env: Record<string, string>,
  logDir: string,
  timeoutMs = 120_000,
): Promise<Part> {
  hookExit()
  mkdirSync(logDir, { recursive: true })
  const spawnedAt = performance.now()
  const child = track(
    spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] }),
  )
  const log = createWriteStream(join(logDir, `${name}.log`))
  child.stderr?.pipe(log)
  const stop = (graceMs = 3_000) =>
    new Promise<void>((done) => {
      if (child.exitCode !== null || child.signalCode !== null) return done()
      const kill = setTimeout(() => child.kill('SIGKILL'), graceMs)
      child.once('exit', () => {
        clearTimeout(kill)
        done()
      })
      child.kill('SIGCONT')
      child.kill('SIGTERM')
    })
  try {
    const { info, readyAt } = await new Promise<{ info: Record<string, unknown>; readyAt: number }>((ok, fail) => {
      const timer = setTimeout(
        () => fail(new Error(`${name} was not ready in ${timeoutMs} ms; see ${join(logDir, `${name}.log`)}`)),
        timeoutMs,
      )
      const rl = createInterface({ input: child.stdout! })
      rl.on('line', (line) => {
        log.write(`[stdout] ${line}\n`)
        if (!line.startsWith('{')) return
        try {
          const parsed = JSON.parse(line) as Record<string, unknown>
          clearTimeout(timer)
          ok({ info: parsed, readyAt: performance.now() })
        } catch {
          /* not the ready line */
        }
      })
      child.once('exit', (code, sig) => {
        clearTimeout(timer)
        fail(new Error(`${name} exited (${code ?? sig}) before it was ready; see ${join(logDir, `${name}.log`)}`))
      })
    })
    return { name, child, pid: child.pid ?? -1, info, readyAt, spawnedAt, stop }
  } catch (e) {
    await stop(500)
    throw e
  }
}

/** `node --import tsx <script>` with the same Node as this process. */
export function spawnTsx(
  name: string,
  script: string,
  args: string[],
  env: Record<string, string>,
  logDir: string,
  timeoutMs?: number,
): Promise<Part> {
  return spawnReady(name, process.execPath, ['--import', 'tsx', join(ROOT, script), ...args], env, logDir, timeoutMs)
}
