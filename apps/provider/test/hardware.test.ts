import { describe, expect, it } from 'vitest'
import { parseCudaVersion, parseNvidiaSmi } from '../src/hardware.ts'

describe('nvidia-smi parsing', () => {
  it('reads model, VRAM, driver, utilisation and temperature per GPU', () => {
    const csv =
      '0, NVIDIA H100 80GB HBM3, 81559, 550.54.15, 3, 31\n1, NVIDIA GeForce RTX 4090, 24564, 550.54.15, [N/A], 45\n'
    const gpus = parseNvidiaSmi(csv, '12.4')
    expect(gpus).toEqual([
      {
        index: 0,
        model: 'NVIDIA H100 80GB HBM3',
        vramMb: 81559,
        driver: '550.54.15',
        cuda: '12.4',
        utilizationPct: 3,
        temperatureC: 31,
      },
      {
        index: 1,
        model: 'NVIDIA GeForce RTX 4090',
        vramMb: 24564,
        driver: '550.54.15',
        cuda: '12.4',
        utilizationPct: null,
        temperatureC: 45,
      },
    ])
  })

  it('skips lines it cannot read instead of inventing GPUs', () => {
    expect(parseNvidiaSmi('garbage\n\n, , ,\n')).toEqual([])
  })

  it('finds the CUDA version in the banner', () => {
    expect(parseCudaVersion('| NVIDIA-SMI 550.54.15   Driver Version: 550.54.15   CUDA Version: 12.4     |')).toBe(
      '12.4',
    )
  })
})

describe('engine timestamps', () => {
  it('keep the nanoseconds Date.parse would drop, and read "never" as null', async () => {
    const { engineTime } = await import('../src/runtime/leftovers.ts')
    expect(engineTime('2025-11-21T09:58:01.123456789Z')).toBeCloseTo(Date.parse('2025-11-21T09:58:01Z') + 123.456789, 6)
    expect(engineTime('2025-11-21T09:58:01Z')).toBe(Date.parse('2025-11-21T09:58:01Z'))
    expect(engineTime('0001-01-01T00:00:00Z')).toBeNull()
    expect(engineTime('')).toBeNull()
  })
})
