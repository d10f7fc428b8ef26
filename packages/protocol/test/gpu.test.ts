import { describe, expect, it } from 'vitest'
import { gpuMismatch, gpuNeed } from '../src/index.ts'

const rtx = { index: 0, model: 'NVIDIA GeForce RTX 4090', vramMb: 24_564 }
const l4 = { index: 1, model: 'NVIDIA L4', vramMb: 23_034 }

describe('gpuMismatch', () => {
  it('fits a CPU job anywhere, and a GPU job where enough GPUs of an asked model have the VRAM', () => {
    expect(gpuMismatch(gpuNeed({ count: 0, models: [], minVramMb: 0 }), [])).toBeUndefined()
    expect(gpuMismatch(gpuNeed({ count: 1, models: ['rtx 4090'], minVramMb: 24_000 }), [l4, rtx])).toBeUndefined()
    expect(gpuMismatch(gpuNeed({ count: 2, models: [], minVramMb: 0 }), [l4, rtx])).toBeUndefined()
  })

  it('names the first rule that fails: count, then model, then VRAM', () => {
    expect(gpuMismatch(gpuNeed({ count: 2, models: ['4090'], minVramMb: 0 }), [rtx])).toBe('gpu_count')
    expect(gpuMismatch(gpuNeed({ count: 1, models: ['A100'], minVramMb: 0 }), [rtx, l4])).toBe('gpu_model')
    expect(gpuMismatch(gpuNeed({ count: 1, models: ['L4'], minVramMb: 24_000 }), [rtx, l4])).toBe('gpu_vram')
    expect(gpuMismatch(gpuNeed({ count: 2, models: ['4090'], minVramMb: 0 }), [rtx, l4])).not.toBeUndefined()
  })
})
