import { describe, expect, it } from 'vitest'
import { Identity, Kind, seal, sha256Hex, type ResultReceipt } from '@kiln/protocol'
import { checkReceipt } from '../src/index.ts'

describe('checkReceipt', () => {
  it('accepts a receipt signed by the lease provider whose digest matches the output', () => {
    const { provider, lease, output, receipt } = setup()
    const r = checkReceipt(seal(provider, Kind.receipt, receipt), { lease, output })
    expect(r.receipt.outputDigest).toBe(sha256Hex(output))
  })

  it('refuses a receipt signed by someone else', () => {
    const { lease, output, receipt } = setup()
    const other = Identity.generate()
    expect(() =>
      checkReceipt(seal(other, Kind.receipt, { ...receipt, provider: other.address }), { lease, output }),
    ).toThrowError(expect.objectContaining({ kind: 'ENVELOPE_WRONG_SIGNER' }))
  })

  it('refuses a receipt with a bad signature', () => {
    const { provider, lease, output, receipt } = setup()
    const env = seal(provider, Kind.receipt, receipt)
    expect(() => checkReceipt({ ...env, payload: { ...receipt, exitCode: 1 } }, { lease, output })).toThrowError(
      expect.objectContaining({ kind: 'ENVELOPE_BAD_SIGNATURE' }),
    )
  })

  it('refuses output that does not match the claimed digest', () => {
    const { provider, lease, receipt } = setup()
    expect(() =>
      checkReceipt(seal(provider, Kind.receipt, receipt), { lease, output: new TextEncoder().encode('tampered!!') }),
    ).toThrowError(expect.objectContaining({ kind: 'ARTIFACT_DIGEST_MISMATCH' }))
  })
})

function setup() {
  const provider = Identity.generate()
  const output = new TextEncoder().encode('the result')
  const lease = { jobId: 'job_0000000000abcd', provider: provider.address }
  const receipt: ResultReceipt = {
    jobId: lease.jobId,
    provider: provider.address,
    status: 'succeeded',
    exitCode: 0,
    outputDigest: sha256Hex(output),
    outputBytes: output.byteLength,
    logDigest: sha256Hex(''),
    logBytes: 0,
    startedAt: 1,
    endedAt: 2,
    containerSeconds: 1,
    gpuSeconds: 0,
  }
  return { provider, lease, output, receipt }
}
