import { describe, expect, it } from 'vitest'
import { gpuNeed, type GpuInfo } from '@kiln/protocol'
import { pickGpus } from '../src/runtime/index.ts'

const gpus: GpuInfo[] = [
  { index: 0, model: 'NVIDIA GeForce RTX 3060', vramMb: 12288 },
  { index: 1, model: 'NVIDIA GeForce RTX 4090', vramMb: 24564 },
  { index: 2, model: 'NVIDIA GeForce RTX 4090', vramMb: 24564 },
  { index: 3, model: 'NVIDIA A100-SXM4-80GB', vramMb: 81920 },
]
const need = (count: number, models: string[] = [], minVramMb = 0) => gpuNeed({ count, models, minVramMb })

describe('pickGpus', () => {
  it('takes the first fitting GPUs by count, model and VRAM', () => {
    expect(pickGpus(need(0), gpus)).toEqual({ ids: [] })
    expect(pickGpus(need(2), gpus)).toEqual({ ids: ['0', '1'] })
    expect(pickGpus(need(2, ['RTX 4090']), gpus)).toEqual({ ids: ['1', '2'] })
    expect(pickGpus(need(1, ['4090', 'a100'], 40000), gpus)).toEqual({ ids: ['3'] })
    expect(pickGpus(need(3, [], 20000), gpus)).toEqual({ ids: ['1', '2', '3'] })
  })

  it('skips busy GPUs, and says when the fitting ones are taken', () => {
    expect(pickGpus(need(1, ['4090']), gpus, new Set([1]))).toEqual({ ids: ['2'] })
    expect(pickGpus(need(2, ['4090']), gpus, new Set([2]))).toEqual({
      problem: 'the job needs 2 GPUs of model 4090: 2 fit, 1 of them busy (2)',
    })
  })

  it('says why the machine can never take the job, by the protocol fit rule', () => {
    expect(pickGpus(need(5), gpus)).toEqual({ problem: 'the job needs 5 GPUs: not enough GPUs on this machine' })
    expect(pickGpus(need(1, ['H100']), gpus)).toEqual({
      problem: 'the job needs 1 GPU of model h100: no GPU of an asked model on this machine',
    })
    expect(pickGpus(need(2, ['4090'], 30000), gpus)).toEqual({
      problem:
        'the job needs 2 GPUs of model 4090 with at least 30000 MiB: not enough GPUs with the asked VRAM on this machine',
    })
    expect(pickGpus(need(1), [])).toMatchObject({ problem: expect.stringMatching(/not enough GPUs/) })
  })
})
