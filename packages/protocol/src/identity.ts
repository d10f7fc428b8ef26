import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign as edSign,
  verify as edVerify,
  type KeyObject,
} from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { inspect } from 'node:util'
import bs58 from 'bs58'
import { KilnError } from './errors.ts'

/** A base58 Ed25519 public key: at once a Solana address and (wrapped) a libp2p PeerId. */
export type Address = string & { readonly __brand: 'Address' }

// DER prefixes that turn raw Ed25519 keys into the forms node:crypto imports.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')

export function isAddress(value: unknown): value is Address {
  if (typeof value !== 'string' || value.length < 32 || value.length > 44) return false
  try {
    return bs58.decode(value).length === 32
  } catch {
    return false
  }
}

export function assertIsAddress(value: unknown, field = 'address'): asserts value is Address {
  if (!isAddress(value)) {
    throw new KilnError('PAYLOAD_INVALID', `${field} is not a valid address`, {
      issues: [{ path: field, message: 'not a base58-encoded 32-byte public key', expected: 'a Solana address' }],
    })
  }
}

export function addressFromPublicKey(publicKey: Uint8Array): Address {
  return bs58.encode(publicKey) as Address
}

export function publicKeyFromAddress(address: Address): Uint8Array {
  return bs58.decode(address)
}

const publicKeyCache = new Map<string, KeyObject>()

function publicKeyObject(address: Address): KeyObject {
  let key = publicKeyCache.get(address)
  if (!key) {
    key = createPublicKey({
      key: Buffer.concat([SPKI_PREFIX, publicKeyFromAddress(address)]),
      format: 'der',
      type: 'spki',
    })
    if (publicKeyCache.size > 10_000) publicKeyCache.clear()
    publicKeyCache.set(address, key)
  }
  return key
}

/** Verifies an Ed25519 signature by `address` over `message`. Never throws. */
export function verifySignature(address: string, message: Uint8Array, signature: Uint8Array): boolean {
  if (!isAddress(address) || signature.length !== 64) return false
  try {
    return edVerify(null, message, publicKeyObject(address), signature)
  } catch {
    return false
  }
}

/**
 * An actor's keypair. The secret stays inside: it is not enumerable, not serialised by
 * JSON.stringify and not shown by console.log, so it cannot leak through a log line.
 */
export class Identity {
  readonly address: Address
  readonly publicKey: Uint8Array
  readonly #secretKey: Uint8Array
  readonly #privateKey: KeyObject

  private constructor(secretKey: Uint8Array) {
    this.#secretKey = Uint8Array.from(secretKey)
    this.publicKey = this.#secretKey.slice(32)
    this.address = addressFromPublicKey(this.publicKey)
    this.#privateKey = createPrivateKey({
      key: Buffer.concat([PKCS8_PREFIX, this.#secretKey.subarray(0, 32)]),
      format: 'der',
      type: 'pkcs8',
    })
  }

  static generate(): Identity {
    const { privateKey } = generateKeyPairSync('ed25519')
    const seed = privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(PKCS8_PREFIX.length)
    return Identity.fromSeed(seed)
  }

  static fromSeed(seed: Uint8Array): Identity {
    if (seed.length !== 32)
      throw new KilnError('KEYPAIR_FILE_INVALID', 'an Ed25519 seed is 32 bytes', { length: seed.length })
    const priv = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' })
    const pub = createPublicKey(priv).export({ format: 'der', type: 'spki' }).subarray(SPKI_PREFIX.length)
    return new Identity(Uint8Array.from([...seed, ...pub]))
  }

  /** From a 64-byte Solana secret key (seed followed by public key); checks they belong together. */
  static fromSecretKey(secretKey: Uint8Array): Identity {
    if (secretKey.length !== 64)
      throw new KilnError('KEYPAIR_FILE_INVALID', 'a Solana secret key is 64 bytes', { length: secretKey.length })
    const id = Identity.fromSeed(secretKey.subarray(0, 32))
    if (!Buffer.from(id.publicKey).equals(Buffer.from(secretKey.subarray(32)))) {
      throw new KilnError('KEYPAIR_FILE_INVALID', 'the public half of the secret key does not match its seed')
    }
    return id
  }

  sign(message: Uint8Array): Uint8Array {
    return new Uint8Array(edSign(null, message, this.#privateKey))
  }

  /** The 64-byte secret key, for the few places that must hand it to a library (web3.js, libp2p). */
  exportSecretKey(): Uint8Array {
    return Uint8Array.from(this.#secretKey)
  }

  toJSON(): { address: Address } {
    return { address: this.address }
  }

  [inspect.custom](): string {
    return `Identity(${this.address})`
  }
}

/** Reads a keypair file in the Solana CLI format: a JSON array of the 64 secret-key bytes. */
export function loadIdentity(path: string): Identity {
  if (!existsSync(path)) throw new KilnError('KEYPAIR_FILE_MISSING', `no keypair file at ${path}`, { path })
  let bytes: unknown
  try {
    bytes = JSON.parse(readFileSync(path, 'utf8'))
  } catch (cause) {
    throw new KilnError('KEYPAIR_FILE_INVALID', `keypair file ${path} is not JSON`, { path }, { cause })
  }
  if (!Array.isArray(bytes) || bytes.length !== 64 || !bytes.every((b) => Number.isInteger(b) && b >= 0 && b <= 255)) {
    throw new KilnError(
      'KEYPAIR_FILE_INVALID',
      `keypair file ${path} must be a JSON array of 64 bytes (Solana keypair format)`,
      { path },
    )
  }
  return Identity.fromSecretKey(Uint8Array.from(bytes as number[]))
}

/** Writes a keypair file readable only by its owner. Refuses to overwrite. */
export function saveIdentity(path: string, identity: Identity): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
  writeFileSync(path, JSON.stringify(Array.from(identity.exportSecretKey())), { mode: 0o600, flag: 'wx' })
  chmodSync(path, 0o600)
}

/** Loads the keypair at `path`, creating it first when missing. */
export function loadOrCreateIdentity(path: string): Identity {
  if (existsSync(path)) return loadIdentity(path)
  const id = Identity.generate()
  saveIdentity(path, id)
  return id
}
