import {
  Kind,
  KilnError,
  MAX_SECRETS_ENVELOPE_BYTES,
  open,
  SecretsPayload,
  type Address,
  type Envelope,
  type JobSpec,
} from '@kiln/protocol'

/** Sealed with the lock; the run starts right after, but a re-dispatch may come later. */
const MAX_SECRETS_TTL_MS = 6 * 3600_000

/**
 * What the marketplace checks of the sealed secrets a lock carries, without being able to
 * open them: signed by the job's client, sealed to the provider the run was placed on, for
 * this job and this placement's vault. The provider checks the same again and opens the box;
 * this check only makes a wrong bundle fail at the lock, where the client sees why, instead
 * of at the provider. A spec that names no secrets takes none.
 */
export function checkSealedSecrets(
  envelope: unknown,
  run: {
    client: Address
    provider: Address
    jobId: string
    escrowId: string
    spec: Pick<JobSpec, 'secrets' | 'privateImage'>
  },
): Envelope<SecretsPayload> | undefined {
  const wanted = run.spec.secrets.length > 0 || run.spec.privateImage
  if (envelope === undefined) {
    if (!wanted) return undefined
    throw new KilnError(
      'SECRETS_UNSEALABLE',
      `the job's spec names ${run.spec.secrets.length ? `secrets (${run.spec.secrets.join(', ')})` : 'a private image'}, and the lock carries no sealed secrets for the provider: lock with the values (kiln watch --secret NAME)`,
      {
        issues: [
          { path: 'secrets', message: 'missing', expected: `a kiln/secrets/1 envelope sealed to ${run.provider}` },
        ],
      },
    )
  }
  if (!wanted)
    throw new KilnError('SECRETS_UNSEALABLE', "the lock carries sealed secrets, and the job's spec names none", {
      issues: [{ path: 'secrets', message: 'unexpected', expected: 'no secrets, or a spec that names them' }],
    })
  const { payload, envelope: opened } = open(envelope, {
    kind: Kind.secrets,
    schema: SecretsPayload,
    signer: run.client,
    maxBytes: MAX_SECRETS_ENVELOPE_BYTES,
    maxTtlMs: MAX_SECRETS_TTL_MS,
  })
  const wrong = (field: string, got: string, want: string) =>
    new KilnError('SECRETS_UNSEALABLE', `the sealed secrets are for ${field} ${got}, and this run's is ${want}`, {
      issues: [{ path: `secrets.${field}`, message: `sealed for ${got}`, expected: want }],
    })
  if (payload.provider !== run.provider) throw wrong('provider', payload.provider, run.provider)
  if (payload.jobId !== run.jobId) throw wrong('jobId', payload.jobId, run.jobId)
  if (payload.escrowId !== run.escrowId) throw wrong('escrowId', payload.escrowId, run.escrowId)
  return opened
}
