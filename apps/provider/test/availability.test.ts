import { describe, expect, it } from 'vitest'
import { availability, createAvailability, type AvailabilitySources } from '../src/availability.ts'
import type { GpuProcess } from '../src/hardware.ts'

const game: GpuProcess = {
  pid: 4242,
  name: 'C:\\Games\\Cyberpunk2077\\bin\\x64\\Cyberpunk2077.exe',
  usedMemoryMb: 6100,
}

describe('availability', () => {
  it('says why it is unavailable: owner first, then the GPU, the engine, recovery, the wallet, work', () => {
    expect(availability({ paused: true, auto: game, dockerProblem: 'down', busy: true })).toEqual({
      state: 'paused',
      available: false,
      reason: 'paused by owner',
    })
    expect(
      availability({ paused: false, dockerProblem: 'cannot reach the Docker engine at /x', busy: false }).reason,
    ).toBe('Docker engine unavailable: cannot reach the Docker engine at /x')
    expect(availability({ paused: false, recovering: true, busy: false }).reason).toBe(
      'recovering jobs from before a restart',
    )
    expect(availability({ paused: false, recovering: true, unfunded: 'wallet not funded', busy: false }).reason).toBe(
      'recovering jobs from before a restart',
    )
    expect(availability({ paused: false, unfunded: 'wallet not funded: no stablecoin for bonds', busy: true })).toEqual(
      { state: 'running', available: false, reason: 'wallet not funded: no stablecoin for bonds' },
    )
    expect(availability({ paused: false, busy: true })).toEqual({
      state: 'running',
      available: false,
      reason: 'running a job',
    })
    expect(availability({ paused: false, dockerProblem: 'x'.repeat(500), busy: false }).reason).toHaveLength(200)
  })
})

describe(createAvailability.name, () => {
  it('takes no work before the engine is checked and recovery has run, then says available', () => {
    const { avail } = setup()
    expect(avail.now()).toEqual({
      state: 'running',
      available: false,
      reason: 'Docker engine unavailable: the engine was not checked yet',
    })
    avail.setDocker(undefined)
    expect(avail.now().reason).toBe('recovering jobs from before a restart')
    avail.markRecovered()
    expect(avail.now()).toEqual({ state: 'running', available: true })
    avail.setDocker('cannot reach the Docker engine at /x')
    expect(avail.now()).toMatchObject({
      available: false,
      reason: 'Docker engine unavailable: cannot reach the Docker engine at /x',
    })
  })

  it("folds the GPU watch, the wallet and the job slot into the same answer, the owner's pause first", () => {
    const { avail, src } = setup()
    avail.setDocker(undefined)
    avail.markRecovered()
    src.busy = true
    expect(avail.now().reason).toBe('running a job')
    src.unfunded = 'wallet not funded: no stablecoin for bonds'
    expect(avail.now().reason).toBe('wallet not funded: no stablecoin for bonds')
    src.by = game
    expect(avail.now()).toEqual({ state: 'auto-paused', available: false, reason: 'GPU in use by Cyberpunk2077.exe' })
    expect(avail.pause(1000)).toBe(true)
    expect(avail.pause(2000)).toBe(false) // paused since the first time
    expect(avail.pausedAt()).toBe(1000)
    expect(avail.now()).toEqual({ state: 'paused', available: false, reason: 'paused by owner' })
    avail.resume()
    expect(avail.pausedAt()).toBeUndefined()
    expect(avail.now().state).toBe('auto-paused')
  })
})

function setup() {
  const src: { by?: GpuProcess; unfunded?: string; busy: boolean } = { busy: false }
  const sources: AvailabilitySources = {
    autoPausedBy: () => src.by,
    unfunded: () => src.unfunded,
    busy: () => src.busy,
  }
  return { src, avail: createAvailability(sources) }
}
