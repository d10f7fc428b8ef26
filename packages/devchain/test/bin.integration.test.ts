import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { Connection, Keypair, LAMPORTS_PER_SOL } from '@solana/web3.js'
import { describe, expect, it } from 'vitest'

const ROOT = join(import.meta.dirname, '..', '..', '..')
const BIN = join(ROOT, 'packages', 'devchain', 'src', 'bin.ts')

interface Running {
  child: ChildProcess
  info: { rpcUrl: string; wsUrl: string; mint: string }
}

async function startBin(dataDir: string): Promise<Running> {
  // Node itself with tsx as a loader (not the tsx wrapper, which would leave its child
  // running when killed), so that SIGKILL really is a crash of the devchain.
  const child = spawn(process.execPath, ['--import', 'tsx', BIN, '--port', '0', '--data', dataDir], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve)
    child.once('exit', (code) => reject(new Error(`devchain exited early with ${code}`)))
  })
  return { child, info: JSON.parse(line) as Running['info'] }
}

const exited = (child: ChildProcess): Promise<number | null> =>
  child.exitCode !== null
    ? Promise.resolve(child.exitCode)
    : new Promise((resolve) => child.once('exit', (code) => resolve(code)))

describe('devchain bin (a separate process, as other processes see it)', () => {
  it('prints its URLs as one JSON line, keeps state through a crash, and stops cleanly on SIGTERM', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'kiln-devchain-bin-'))
    const kp = Keypair.generate()
    let run = await startBin(dataDir)
    try {
      expect(run.info.wsUrl).toMatch(/^ws:\/\//)
      const conn = new Connection(run.info.rpcUrl, 'confirmed')
      const sig = await conn.requestAirdrop(kp.publicKey, LAMPORTS_PER_SOL)
      await conn.confirmTransaction({ signature: sig, ...(await conn.getLatestBlockhash()) })
      expect(await conn.getBalance(kp.publicKey)).toBe(LAMPORTS_PER_SOL)
      // Past the save debounce, a crash (no chance to flush) loses nothing.
      await new Promise((r) => setTimeout(r, 800))
      run.child.kill('SIGKILL')
      await exited(run.child)

      const mint = run.info.mint
      run = await startBin(dataDir)
      expect(run.info.mint).toBe(mint)
      expect(await new Connection(run.info.rpcUrl, 'confirmed').getBalance(kp.publicKey)).toBe(LAMPORTS_PER_SOL)
      const code = exited(run.child)
      run.child.kill('SIGTERM')
      expect(await code).toBe(0)
    } finally {
      if (run.child.exitCode === null) run.child.kill('SIGKILL')
    }
  })
})
