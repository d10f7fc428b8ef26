import { createHmac } from 'node:crypto'
import { KilnError, type ComparatorConfig, type VerificationSettings } from '@kiln/protocol'

export { VerificationSettings, type VerificationSettingsInput } from '@kiln/protocol'

export interface VerificationDefaults {
  p: number
  bondRatio: number
}

/**
 * The marketplace default: one job in ten re-run, and a bond of ten times the lock, the
 * least at p = 0.1 for which cheating loses money even when it saves the whole price:
 * p*S > (1-p)*G with S = 10 G.
 */
export const DEFAULT_VERIFICATION: VerificationDefaults = { p: 0.1, bondRatio: 10 }

export interface ResolvedVerification {
  p: number
  /** Token base units the provider locks next to the client's payment. */
  bond: number
  comparator: ComparatorConfig
}

/** Fills a job's settings from the marketplace defaults; the bond scales with the run's lock. */
export function resolveVerification(
  settings: VerificationSettings | undefined,
  lockAmount: number,
  defaults: VerificationDefaults = DEFAULT_VERIFICATION,
): ResolvedVerification {
  const s = settings ?? { comparator: { kind: 'exact' as const } }
  const bond = s.bondPerJob ?? Math.ceil(lockAmount * (s.bondRatio ?? defaults.bondRatio))
  return { p: s.p ?? defaults.p, bond, comparator: s.comparator }
}

/** HMAC keys shorter than this could be brute-forced from observed decisions. */
const MIN_SECRET_BYTES = 32

function draw(secret: Uint8Array, label: string, parts: readonly string[]): number {
  if (secret.byteLength < MIN_SECRET_BYTES) {
    throw new KilnError(
      'CONFIG_INVALID',
      `the verification secret must be at least ${MIN_SECRET_BYTES} bytes, got ${secret.byteLength}`,
    )
  }
  // Length-prefixed parts, so ("ab", "c") and ("a", "bc") never hash alike.
  const mac = createHmac('sha256', secret).update(label)
  for (const p of parts) mac.update(`\n${p.length}:${p}`)
  // 53 bits: the most a double holds exactly, so the draw is uniform in [0, 1).
  return Number(mac.digest().readBigUInt64BE(0) >> 11n) / 2 ** 53
}

/**
 * Whether this job gets a replica, decided once at submit time and stored, never sent to a
 * provider. It is HMAC-SHA256 of the job id and the client's signed submit nonce under a
 * marketplace secret: a provider, who never sees the secret, cannot predict it, and nobody
 * can steer it: the job id is the marketplace's, the nonce is fixed by the client's
 * signature before the id exists, and the secret is fixed before either. The decision
 * must also stay invisible in the leases: see README "Leases that look alike".
 */
export function decideSpotCheck(jobId: string, secret: Uint8Array, p: number, submitNonce = ''): boolean {
  if (!(p >= 0 && p <= 1)) throw new KilnError('PAYLOAD_INVALID', `spot-check probability must be in [0, 1], got ${p}`)
  return draw(secret, 'kiln/spot-check/1', [jobId, submitNonce]) < p
}

/**
 * Attempt numbers for a job's placements (primary, replica, tie-break, re-placements) that
 * do not reveal their order. escrowIdFor(jobId, attempt) goes into every lease; sequential
 * attempts would tell a provider holding "a1" that another placement exists. These are
 * distinct, pseudo-random (HMAC of the job id and the index) and under 2^31.
 */
export function placementAttempts(jobId: string, secret: Uint8Array, count: number): number[] {
  const out: number[] = []
  for (let i = 0; out.length < count; i++) {
    const n = Math.floor(draw(secret, 'kiln/placement/1', [jobId, String(i)]) * 2 ** 31)
    if (!out.includes(n)) out.push(n)
  }
  return out
}
