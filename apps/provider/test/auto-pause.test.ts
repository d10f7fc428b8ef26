import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import {
  foreignProcesses,
  overrideAutoPause,
  processLabel,
  resumesAt,
  stepAutoPause,
  type AutoPause,
} from '../src/auto-pause.ts'
import { availability } from '../src/availability.ts'
import { parseComputeApps, queryComputeApps, queryGpus, type GpuProcess } from '../src/hardware.ts'

const game: GpuProcess = {
  pid: 4242,
  name: 'C:\\Games\\Cyberpunk2077\\bin\\x64\\Cyberpunk2077.exe',
  usedMemoryMb: 6100,
}
const blender: GpuProcess = { pid: 777, name: '/usr/bin/blender', usedMemoryMb: 900 }
const ours: GpuProcess = { pid: 100, name: '/app/train', usedMemoryMb: 2000 }

describe('gamer mode', () => {
  it("reads nvidia-smi's compute-apps CSV, commas in names included", () => {
    expect(
      parseComputeApps('4242, /opt/game, v2.exe, 6100\n777, /usr/bin/blender, [N/A]\n\nnot a pid, x, 1\n'),
    ).toEqual([
      { pid: 4242, name: '/opt/game, v2.exe', usedMemoryMb: 6100 },
      { pid: 777, name: '/usr/bin/blender', usedMemoryMb: null },
    ])
  })

  it("counts only processes outside Kiln's containers and off the ignore list", () => {
    expect(foreignProcesses([game, ours, blender], new Set([100]))).toEqual([game, blender])
    expect(foreignProcesses([game, blender], new Set(), ['blender'])).toEqual([game])
    expect(processLabel(game)).toBe('Cyberpunk2077.exe')
  })

  it('pauses at once when a foreign process uses a GPU, and resumes after the idle time without one', () => {
    const idle = 300_000
    let s: AutoPause = stepAutoPause({}, [], 0, idle)
    expect(s.by).toBeUndefined()
    s = stepAutoPause(s, [game], 1000, idle)
    expect(s.by?.pid).toBe(4242)
    expect(availability({ paused: false, auto: s.by, busy: false })).toEqual({
      state: 'auto-paused',
      available: false,
      reason: 'GPU in use by Cyberpunk2077.exe',
    })
    // Another program starts and the game keeps running: still the game named.
    s = stepAutoPause(s, [blender, game], 5000, idle)
    expect(s.by?.pid).toBe(4242)
    s = stepAutoPause(s, [], 10_000, idle)
    expect(s.by?.pid).toBe(4242)
    expect(resumesAt(s, 0, idle)).toBe(5000 + idle)
    s = stepAutoPause(s, [], 5000 + idle - 1, idle)
    expect(s.by).toBeDefined()
    s = stepAutoPause(s, [], 5000 + idle, idle)
    expect(s.by).toBeUndefined()
    expect(availability({ paused: false, auto: s.by, busy: false })).toEqual({ state: 'running', available: true })
  })

  it('a game seen again during the idle time restarts the countdown', () => {
    let s = stepAutoPause({}, [game], 0, 1000)
    s = stepAutoPause(s, [], 500, 1000)
    s = stepAutoPause(s, [game], 900, 1000)
    s = stepAutoPause(s, [], 1500, 1000)
    expect(s.by?.pid).toBe(4242)
    expect(stepAutoPause(s, [], 1900, 1000).by).toBeUndefined()
  })

  it('when the owner resumes, what runs now is ignored until it exits; the next game pauses again', () => {
    let s = stepAutoPause({}, [game], 0, 1000)
    s = overrideAutoPause(s, [game])
    expect(s).toEqual({ ignored: [4242] })
    s = stepAutoPause(s, [game], 100, 1000)
    expect(s.by).toBeUndefined()
    s = stepAutoPause(s, [game, blender], 200, 1000)
    expect(s.by?.pid).toBe(777)
    s = stepAutoPause({ ignored: [4242] }, [], 300, 1000)
    expect(s).toEqual({})
  })
})

describe('nvidia-smi queries', () => {
  // A test double for the NVIDIA driver's CLI: there is no GPU on these machines. The parsing
  // and the process call are what is tested; the CSV is what nvidia-smi prints.
  const dir = mkdtempSync(join(tmpdir(), 'kiln-fake-smi-'))
  const smi = join(dir, 'nvidia-smi')
  writeFileSync(
    smi,
    `#!/bin/sh
case "$1" in
  --query-gpu=*) echo "0, NVIDIA GeForce RTX 4090, 24564, 550.54.15, 87, 71" ;;
  --query-compute-apps=*) echo "4242, /opt/games/game.exe, 6100" ;;
  *) echo "CUDA Version: 12.4" ;;
esac
`,
  )
  chmodSync(smi, 0o755)
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('polls utilisation, temperature and processes', async () => {
    expect(await queryGpus(smi, '12.4')).toEqual([
      {
        index: 0,
        model: 'NVIDIA GeForce RTX 4090',
        vramMb: 24564,
        driver: '550.54.15',
        cuda: '12.4',
        utilizationPct: 87,
        temperatureC: 71,
      },
    ])
    expect(await queryComputeApps(smi)).toEqual([{ pid: 4242, name: '/opt/games/game.exe', usedMemoryMb: 6100 }])
  })

  it('fails loudly when nvidia-smi is not there (the watch keeps its state)', async () => {
    await expect(queryComputeApps(join(dir, 'missing'))).rejects.toMatchObject({ code: 'ENOENT' })
  })
})
