import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { chmodSync, mkdtempSync, readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from './redis.ts'

export interface PostgresServer {
  url: string
  stop(): Promise<void>
}

function binDir(): string {
  const versions = readdirSync('/usr/lib/postgresql').sort()
  const v = versions[versions.length - 1]
  if (!v) throw new Error('no PostgreSQL server installed (npm run setup installs postgresql)')
  return join('/usr/lib/postgresql', v, 'bin')
}

/** A private PostgreSQL server in a temp dir on a free loopback port (the real engine). */
export async function startPostgres(): Promise<PostgresServer> {
  const bin = binDir()
  const dir = mkdtempSync(join(tmpdir(), 'kiln-pg-'))
  chmodSync(dir, 0o777)
  const data = join(dir, 'data')
  // Postgres refuses to run as root; as root, run it as the postgres user (signals then
  // reach postgres itself, which a runuser/su wrapper would not pass on).
  const user =
    process.getuid?.() === 0
      ? {
          uid: Number(execFileSync('id', ['-u', 'postgres']).toString()),
          gid: Number(execFileSync('id', ['-g', 'postgres']).toString()),
        }
      : {}
  execFileSync(join(bin, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'kiln', '--no-sync'], {
    stdio: 'ignore',
    ...user,
  })
  const port = await freePort()
  const proc: ChildProcess = spawn(
    join(bin, 'postgres'),
    [
      '-D',
      data,
      '-p',
      String(port),
      '-k',
      dir,
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'fsync=off',
      '-c',
      'max_connections=200',
    ],
    { stdio: 'ignore', ...user },
  )
  const url = `postgres://kiln@127.0.0.1:${port}/postgres`
  const deadline = Date.now() + 20_000
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`postgres exited with ${proc.exitCode}`)
    try {
      execFileSync(join(bin, 'pg_isready'), ['-h', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' })
      break
    } catch {
      if (Date.now() > deadline) throw new Error('postgres did not start in 20 s')
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  return {
    url,
    stop: () =>
      new Promise<void>((resolve) => {
        if (proc.exitCode !== null) return resolve()
        proc.once('exit', () => resolve())
        proc.kill('SIGINT')
      }),
  }
}
