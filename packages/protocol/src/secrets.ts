import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto'
import { ed25519, x25519 } from '@noble/curves/ed25519.js'
import { z } from 'zod'
import { canonicalJson } from './bytes.ts'
import { open, seal, type Envelope } from './envelope.ts'
import { KilnError } from './errors.ts'
import { publicKeyFromAddress, type Address, type Identity } from './identity.ts'
import { address, Kind } from './schemas.ts'
import { multilineText, plainText } from './text.ts'

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

/**
 * The largest `kiln/secrets/1` envelope: the sealed box in base64 and the envelope around it.
 * A request that carries one (a lock) must be allowed this much more than its own size.
 */
export const MAX_SECRETS_ENVELOPE_BYTES = Math.ceil((MAX_SEALED_SECRET_BYTES * 4) / 3) + 4096
/** Sealed secrets wait for the provider to start the lease: an hour by default, a day at most (as every envelope). */
export const DEFAULT_SECRETS_TTL_MS = 3600_000

const TAG_BYTES = 16
const NONCE_BYTES = 12
const envNamePattern = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/

/** The sealed bundle, checked after it opens: the same rules the client checked before sealing. */
const BundleShape = z
  .object({
    values: z.record(z.string(), multilineText()),
    registry: z
      .object({
        server: plainText().min(1).max(255),
        username: plainText().min(1).max(255),
        password: plainText().min(1),
      })
      .strict()
      .optional(),
  })
  .strict()

export interface SealTarget {
  provider: Address
  jobId: string
  escrowId: string
}

export interface OpenExpectation {
  /** The lease's client: the only one whose sealed secrets the provider takes. */
  client: Address
  jobId: string
  escrowId: string
  /** The spec's secret names: the bundle must hold exactly these. */
  names: readonly string[]
  /** The spec's privateImage: the bundle must then carry registry credentials. */
  privateImage: boolean
  now?: number
}

function unsealable(message: string, context: Record<string, unknown> = {}, cause?: unknown): KilnError {
  return new KilnError('SECRETS_UNSEALABLE', message, context, cause === undefined ? undefined : { cause })
}

/**
 * What the key and the box are bound to: the kind, the lease (job id, escrow id) and both
 * parties. It is the HKDF info and the AEAD's additional data, so a box opens only for the
 * lease and the pair it was sealed for, even if someone re-signs it in another envelope.
 */
function binding(t: SealTarget, client: Address): Buffer {
  return Buffer.from(
    `${Kind.secrets}\n${canonicalJson({ jobId: t.jobId, escrowId: t.escrowId, provider: t.provider, client })}`,
  )
}

function boxKey(shared: Uint8Array, epk: Uint8Array, recipient: Uint8Array, info: Buffer): Buffer {
  if (shared.every((b) => b === 0)) throw unsealable('the key exchange gave an all-zero secret (a low-order key)')
  // The salt ties the key to this exchange's two public keys, so a key is never reused across boxes.
  return Buffer.from(hkdfSync('sha256', shared, Buffer.concat([epk, recipient]), info, 32))
}

/** The X25519 public key of an Ed25519 address (the birational map); refuses an address off the curve. */
function x25519PublicOf(addr: Address): Uint8Array {
  try {
    return ed25519.utils.toMontgomery(publicKeyFromAddress(addr))
  } catch (e) {
    throw unsealable(
      `the provider address ${addr} is not an Ed25519 public key, so nothing can be sealed to it`,
      { provider: addr },
      e,
    )
  }
}

/** Checks a bundle's shape and names; a message never shows a value. */
function checkBundle(bundle: unknown, where: string): SecretBundle {
  const parsed = BundleShape.safeParse(bundle)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!
    throw unsealable(`${where}: ${issue.path.map(String).join('.') || '(root)'}: ${issue.message}`)
  }
  for (const name of Object.keys(parsed.data.values)) {
    if (!envNamePattern.test(name))
      throw unsealable(
        `${where}: ${JSON.stringify(name.slice(0, 140))} is not an environment variable name (letters, digits and _, not starting with a digit, at most 128)`,
      )
  }
  return parsed.data.registry === undefined ? { values: parsed.data.values } : parsed.data
}

/**
 * Seals a client's secrets to one lease's provider: an ephemeral X25519 key meets the
 * provider's key (derived from its Ed25519 address), HKDF-SHA256 makes the box key, and
 * ChaCha20-Poly1305 seals the bundle. The client signs the envelope; the marketplace relays it
 * and can read nothing in it but whom it is for.
 */
export function sealSecrets(
  client: Identity,
  to: SealTarget,
  bundle: SecretBundle,
  opts: { ttlMs?: number; now?: number } = {},
): Envelope<SecretsPayload> {
  const checked = checkBundle(bundle, 'the secrets to seal')
  const plain = Buffer.from(JSON.stringify(checked))
  if (plain.length + TAG_BYTES > MAX_SEALED_SECRET_BYTES)
    throw unsealable(
      `the secrets and registry credentials take ${plain.length} bytes sealed; the limit is ${MAX_SEALED_SECRET_BYTES - TAG_BYTES} (pass large material as an input instead)`,
      { size: plain.length, max: MAX_SEALED_SECRET_BYTES - TAG_BYTES },
    )
  const recipient = x25519PublicOf(to.provider)
  const esk = x25519.utils.randomSecretKey()
  const epk = x25519.getPublicKey(esk)
  const info = binding(to, client.address)
  const key = boxKey(x25519.getSharedSecret(esk, recipient), epk, recipient, info)
  esk.fill(0)
  const nonce = randomBytes(NONCE_BYTES)
  const cipher = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG_BYTES })
  cipher.setAAD(info, { plaintextLength: plain.length })
  const box = Buffer.concat([cipher.update(plain), cipher.final(), cipher.getAuthTag()])
  plain.fill(0)
  key.fill(0)
  const payload: SecretsPayload = {
    jobId: to.jobId,
    escrowId: to.escrowId,
    provider: to.provider,
    epk: Buffer.from(epk).toString('base64'),
    nonce: nonce.toString('base64'),
    box: box.toString('base64'),
  }
  return seal(client, Kind.secrets, payload, { ttlMs: opts.ttlMs ?? DEFAULT_SECRETS_TTL_MS, now: opts.now })
}

/**
 * Opens the sealed secrets a lease relays, as its provider: the envelope must be the lease's
 * client's, sealed to this provider for this lease, intact, and hold exactly the spec's names
 * (and registry credentials for a private image). Anything else is SECRETS_UNSEALABLE, and the
 * lease cannot start. Nothing a message says comes from a value.
 */
export function openSecrets(provider: Identity, envelope: unknown, expect: OpenExpectation): SecretBundle {
  let payload: SecretsPayload
  try {
    ;({ payload } = open(envelope, {
      kind: Kind.secrets,
      schema: SecretsPayload,
      signer: expect.client,
      maxBytes: MAX_SECRETS_ENVELOPE_BYTES,
      now: expect.now,
    }))
  } catch (e) {
    if (!(e instanceof KilnError)) throw e
    throw unsealable(`the sealed secrets do not open: ${e.message}`, { cause: e.code, ...e.context }, e)
  }
  if (payload.provider !== provider.address)
    throw unsealable(`the secrets are sealed to provider ${payload.provider}, not to this one (${provider.address})`, {
      sealedTo: payload.provider,
    })
  if (payload.jobId !== expect.jobId || payload.escrowId !== expect.escrowId)
    throw unsealable(
      `the secrets are sealed for job ${payload.jobId} escrow ${payload.escrowId}, not for this lease (job ${expect.jobId} escrow ${expect.escrowId})`,
      { jobId: payload.jobId, escrowId: payload.escrowId },
    )
  const epk = Buffer.from(payload.epk, 'base64')
  const nonce = Buffer.from(payload.nonce, 'base64')
  const box = Buffer.from(payload.box, 'base64')
  if (epk.length !== 32 || nonce.length !== NONCE_BYTES || box.length < TAG_BYTES)
    throw unsealable(
      `the sealed secrets are malformed: epk must be 32 bytes (is ${epk.length}), nonce ${NONCE_BYTES} (is ${nonce.length}), box at least ${TAG_BYTES} (is ${box.length})`,
    )
  if (box.length > MAX_SEALED_SECRET_BYTES)
    throw unsealable(`the sealed box is ${box.length} bytes; the limit is ${MAX_SEALED_SECRET_BYTES}`, {
      size: box.length,
      max: MAX_SEALED_SECRET_BYTES,
    })
  const secret = ed25519.utils.toMontgomerySecret(provider.exportSecretKey().subarray(0, 32))
  const recipient = x25519.getPublicKey(secret)
  const info = binding(payload, expect.client)
  let key: Buffer
  try {
    key = boxKey(x25519.getSharedSecret(secret, epk), epk, recipient, info)
  } catch (e) {
    if (e instanceof KilnError) throw e
    throw unsealable('the sealed secrets carry an invalid ephemeral key', {}, e)
  } finally {
    secret.fill(0)
  }
  let plain: Buffer
  try {
    const decipher = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG_BYTES })
    decipher.setAAD(info, { plaintextLength: box.length - TAG_BYTES })
    decipher.setAuthTag(box.subarray(box.length - TAG_BYTES))
    plain = Buffer.concat([decipher.update(box.subarray(0, box.length - TAG_BYTES)), decipher.final()])
  } catch (e) {
    throw unsealable(
      'the sealed box does not open: it was changed on the way, or sealed to another key or for another lease',
      {},
      e,
    )
  } finally {
    key.fill(0)
  }
  let bundle: SecretBundle
  try {
    bundle = checkBundle(JSON.parse(plain.toString('utf8')), 'the opened secrets')
  } catch (e) {
    if (e instanceof KilnError) throw e
    throw unsealable('the opened secrets are not JSON')
  } finally {
    plain.fill(0)
  }
  const given = Object.keys(bundle.values)
  const missing = expect.names.filter((n) => !Object.hasOwn(bundle.values, n))
  const extra = given.filter((n) => !expect.names.includes(n))
  if (missing.length > 0 || extra.length > 0)
    throw unsealable(
      `the sealed secrets must hold exactly the spec's names (${expect.names.join(', ') || 'none'})${missing.length > 0 ? `; missing: ${missing.join(', ')}` : ''}${extra.length > 0 ? `; not in the spec: ${extra.join(', ')}` : ''}`,
      { missing, extra },
    )
  if (expect.privateImage && bundle.registry === undefined)
    throw unsealable('the spec has privateImage but the sealed secrets carry no registry credentials for the pull', {
      privateImage: true,
    })
  // Credentials the spec does not ask for are dropped: the provider keeps nothing it has no use for.
  return expect.privateImage ? bundle : { values: bundle.values }
}

/**
 * The registry host an image reference pulls from, as registry credentials name it: the first
 * path segment when it looks like a host (has a dot or a port, or is localhost), else Docker
 * Hub. Lower-case, since host names are; Docker Hub's other names are one registry.
 */
export function imageRegistry(ref: string): string {
  const [first, ...rest] = ref.split('/')
  const isHost = rest.length > 0 && (/[.:]/.test(first!) || first === 'localhost')
  const host = isHost ? first!.toLowerCase() : 'docker.io'
  return ['index.docker.io', 'registry-1.docker.io'].includes(host) ? 'docker.io' : host
}
