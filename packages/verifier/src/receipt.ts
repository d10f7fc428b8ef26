import {
  Kind,
  KilnError,
  open,
  ResultReceipt,
  sha256Hex,
  type Envelope,
  type Lease,
  type NonceCache,
} from '@kiln/protocol'

export interface CheckedReceipt {
  receipt: ResultReceipt
  envelope: Envelope<ResultReceipt>
}

export interface ReceiptCheck {
  lease: Pick<Lease, 'jobId' | 'provider'>
  /** The output bytes actually delivered, when the run produced any. */
  output?: Uint8Array
  nonces?: NonceCache
  now?: number
}

/**
 * Accepts a result receipt only if the lease's provider signed it, it is for this job, and
 * the delivered output hashes to the digest it claims. Throws KilnError otherwise.
 */
export function checkReceipt(raw: unknown, check: ReceiptCheck): CheckedReceipt {
  const { payload, envelope } = open(raw, {
    kind: Kind.receipt,
    schema: ResultReceipt,
    signer: check.lease.provider,
    nonces: check.nonces,
    now: check.now,
  })
  if (payload.jobId !== check.lease.jobId) {
    throw new KilnError('PAYLOAD_INVALID', `receipt is for ${payload.jobId}, not ${check.lease.jobId}`, {
      jobId: payload.jobId,
    })
  }
  if (payload.provider !== envelope.signer) {
    throw new KilnError('ENVELOPE_WRONG_SIGNER', 'receipt names a provider other than its signer', {
      provider: payload.provider,
      signer: envelope.signer,
    })
  }
  if (payload.status === 'succeeded' && payload.outputDigest === null) {
    throw new KilnError('PAYLOAD_INVALID', 'a succeeded receipt must name its output digest', {
      issues: [{ path: 'outputDigest', message: 'missing', expected: 'a sha256 digest' }],
    })
  }
  if (payload.outputDigest !== null) {
    if (!check.output)
      throw new KilnError('ARTIFACT_NOT_FOUND', 'receipt names an output that was not delivered', {
        digest: payload.outputDigest,
      })
    const actual = sha256Hex(check.output)
    if (actual !== payload.outputDigest || check.output.byteLength !== payload.outputBytes) {
      throw new KilnError(
        'ARTIFACT_DIGEST_MISMATCH',
        `delivered output hashes to ${actual}, receipt claims ${payload.outputDigest}`,
        { claimed: payload.outputDigest, actual },
      )
    }
  }
  return { receipt: payload, envelope: envelope as Envelope<ResultReceipt> }
}
