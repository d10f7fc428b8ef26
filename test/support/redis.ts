import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      const port = typeof addr === 'object' && addr ? addr.port : 0
      srv.close(() => resolve(port))
    })
  })
}

export interface RedisServer {
  port: number
  url: string
  stop(): Promise<void>
  /** Kills the server (SIGKILL: it loses everything, it has no persistence) and starts a new one on the same port. */
  crashAndRestart(): Promise<void>
}

/** Starts a private redis-server on a free loopback port (the real engine, not a fake). */
export async function startRedis(): Promise<RedisServer> {
  const port = await freePort()
  let proc = await launch(port)
  const stop = (p: ChildProcess, signal: NodeJS.Signals) =>
    new Promise<void>((resolve) => {
      if (p.exitCode !== null || p.signalCode !== null) return resolve()
      p.once('exit', () => resolve())
      p.kill(signal)
    })
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    stop: () => stop(proc, 'SIGTERM'),
    async crashAndRestart() {
      await stop(proc, 'SIGKILL')
      proc = await launch(port)
    },
  }
}

async function launch(port: number): Promise<ChildProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-redis-'))
  const proc: ChildProcess = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: 'ignore' },
  )
  const deadline = Date.now() + 10_000
  for (;;) {
    if (proc.exitCode !== null)
      throw new Error(`redis-server exited with ${proc.exitCode}; is redis-server installed (npm run setup)?`)
    const ok = await new Promise<boolean>((resolve) => {
      const s = createServer()
      s.once('error', () => resolve(true))
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(false)))
    })
    if (ok) break
    if (Date.now() > deadline) throw new Error('redis-server did not start in 10 s')
    await new Promise((r) => setTimeout(r, 50))
  }
  return proc
}
