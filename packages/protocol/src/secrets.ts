import { z } from 'zod'
import { address } from './schemas.ts'
import { plainText } from './text.ts'

/**
 * What a client gives one lease's provider and nobody else: the values of the spec's secret
 * names, and for a `privateImage` the registry credentials for that one pull. It travels
 * sealed (`sealSecrets`) inside an envelope the client signs; the marketplace relays it.
 */
export interface SecretBundle {
  /** Secret name → value, exactly the names the spec lists. */
  values: Record<string, string>
  /** Credentials for the image's registry, used only for this lease's pull. */
  registry?: RegistryAuth
}

export interface RegistryAuth {
  /** The registry host (and port), e.g. ghcr.io or localhost:5000. */
  server: string
  username: string
  password: string
}

/** The largest sealed box a lock may carry (all values and credentials together). */
export const MAX_SEALED_SECRET_BYTES = 48 * 1024

const b64 = (max: number) =>
  plainText()
    .max(max)
    .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'base64')

/**
 * The payload of a `kiln/secrets/1` envelope, signed by the client: a box sealed to one
 * provider's key for one lease (its job id and escrow id), so the marketplace that relays it
 * cannot read it, and no other provider or other lease can use it.
 */
export const SecretsPayload = z
  .object({
    jobId: z.string().regex(/^job_[0-9a-z]{10,40}$/),
    escrowId: plainText().min(1).max(64),
    provider: address,
    /** The sender's ephemeral X25519 public key (32 bytes, base64). */
    epk: b64(64),
    /** The AEAD nonce (base64). */
    nonce: b64(32),
    /** The sealed SecretBundle JSON (base64). */
    box: b64(Math.ceil((MAX_SEALED_SECRET_BYTES * 4) / 3) + 64),
  })
  .strict()
export type SecretsPayload = z.output<typeof SecretsPayload>
