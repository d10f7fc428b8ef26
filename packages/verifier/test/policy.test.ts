import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { parseOrThrow } from '@kiln/protocol'
import { decideSpotCheck, placementAttempts, resolveVerification, VerificationSettings } from '../src/index.ts'

const secret = Buffer.alloc(32, 7)
const ids = (n: number) => Array.from({ length: n }, (_, i) => `job_${i.toString(36).padStart(12, '0')}`)

describe('decideSpotCheck', () => {
  it('replicates about a share p of jobs, for any p', () => {
    for (const p of [0.05, 0.1, 0.5]) {
      const hits = ids(20_000).filter((id) => decideSpotCheck(id, secret, p)).length / 20_000
      expect(Math.abs(hits - p)).toBeLessThan(4 * Math.sqrt((p * (1 - p)) / 20_000))
    }
  })

  it('never checks at p = 0 and always at p = 1', () => {
    expect(ids(500).some((id) => decideSpotCheck(id, secret, 0))).toBe(false)
    expect(ids(500).every((id) => decideSpotCheck(id, secret, 1))).toBe(true)
  })

  it('is a fixed decision per job and nonce, which a provider without the secret cannot reproduce', () => {
    const jobs = ids(2_000)
    const ours = jobs.map((id) => decideSpotCheck(id, secret, 0.5, 'nonce-1'))
    expect(jobs.map((id) => decideSpotCheck(id, secret, 0.5, 'nonce-1'))).toEqual(ours)
    // A guessed secret, or the same secret with another nonce, agrees only by chance (~50%).
    const guess = jobs.map((id) => decideSpotCheck(id, randomBytes(32), 0.5, 'nonce-1'))
    const renonced = jobs.map((id) => decideSpotCheck(id, secret, 0.5, 'nonce-2'))
    for (const other of [guess, renonced]) {
      const same = other.filter((v, i) => v === ours[i]).length / jobs.length
      expect(same).toBeGreaterThan(0.45)
      expect(same).toBeLessThan(0.55)
    }
  })

  it('does not follow patterns in job ids: consecutive ids are independent', () => {
    const d = ids(20_000).map((id) => decideSpotCheck(id, secret, 0.5))
    let runs = 1
    for (let i = 1; i < d.length; i++) if (d[i] !== d[i - 1]) runs++
    // For independent fair coins, the number of runs is about n/2 with sd sqrt(n)/2.
    expect(Math.abs(runs - 10_000)).toBeLessThan((4 * Math.sqrt(20_000)) / 2)
  })

  it('refuses a short secret and a p outside [0, 1]', () => {
    expect(() => decideSpotCheck('job_0000000000ab', Buffer.alloc(16), 0.1)).toThrowError(
      expect.objectContaining({ kind: 'CONFIG_INVALID' }),
    )
    expect(() => decideSpotCheck('job_0000000000ab', secret, 1.5)).toThrowError(
      expect.objectContaining({ kind: 'PAYLOAD_INVALID' }),
    )
  })
})

describe('placementAttempts', () => {
  it('gives distinct, stable attempt numbers that do not reveal their order', () => {
    const a = placementAttempts('job_0000000000ab', secret, 3)
    expect(new Set(a).size).toBe(3)
    expect(placementAttempts('job_0000000000ab', secret, 3)).toEqual(a)
    expect(a.every((n) => Number.isInteger(n) && n >= 0 && n < 2 ** 31)).toBe(true)
    // Whether the first placement gets the smaller number is a coin flip over jobs.
    const firstSmaller = ids(2_000).filter((id) => {
      const [x, y] = placementAttempts(id, secret, 2) as [number, number]
      return x < y
    }).length
    expect(firstSmaller / 2_000).toBeGreaterThan(0.45)
    expect(firstSmaller / 2_000).toBeLessThan(0.55)
  })
})

describe('VerificationSettings', () => {
  it('defaults the comparator to exact and leaves p and the bond to the marketplace', () => {
    const s = parseOrThrow(VerificationSettings, {}, 'verification')
    expect(s).toEqual({ comparator: { kind: 'exact' } })
    expect(resolveVerification(s, 1_000)).toEqual({ p: 0.1, bond: 10_000, comparator: { kind: 'exact' } })
  })

  it('takes p, a bond per job or a bond ratio, and a comparator with its defaults', () => {
    const s = parseOrThrow(
      VerificationSettings,
      { p: 0.2, bondRatio: 2.5, comparator: { kind: 'numeric', rtol: 1e-4 } },
      'verification',
    )
    expect(s.comparator).toEqual({ kind: 'numeric', rtol: 1e-4, atol: 1e-8, nan: 'equal', raw: ['**/*.f32'] })
    expect(resolveVerification(s, 1_001)).toMatchObject({ p: 0.2, bond: 2_503 })
    expect(resolveVerification(parseOrThrow(VerificationSettings, { bondPerJob: 7 }, 'v'), 1_000).bond).toBe(7)
  })

  it('names every bad field', () => {
    const bad = VerificationSettings.safeParse({
      p: 1.2,
      bondPerJob: 5,
      bondRatio: 1,
      comparator: { kind: 'image', minSsim: 2 },
    })
    expect(bad.success).toBe(false)
    const paths = bad.error?.issues.map((i) => i.path.join('.'))
    expect(paths).toEqual(expect.arrayContaining(['p', 'comparator.minSsim']))
    expect(VerificationSettings.safeParse({ bondPerJob: 5, bondRatio: 1 }).error?.issues[0]?.path).toEqual([
      'bondRatio',
    ])
    expect(VerificationSettings.safeParse({ replicas: 3 }).success).toBe(false)
  })
})
