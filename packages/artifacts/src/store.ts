import { createReadStream, existsSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { KilnError, sha256Hex } from '@kiln/protocol'

/**
 * Content-addressed files: a blob's name is its sha256, so a stored blob can never be
 * changed and the same output stored twice takes the space once. An S3-compatible store
 * can implement the same interface later.
 */
export interface ArtifactStore {
  put(bytes: Uint8Array, expectedDigest?: string): string
  /** Moves a file whose digest the caller has computed into the store (same filesystem: a rename). */
  adopt(path: string, digest: string): void
  has(digest: string): boolean
  size(digest: string): number
  /** The bytes from `start` (default 0) to the end. */
  open(digest: string, start?: number): Readable
}

const DIGEST = /^[0-9a-f]{64}$/

export function createFileArtifactStore(dir: string): ArtifactStore {
  mkdirSync(dir, { recursive: true })
  const path = (digest: string) => {
    if (!DIGEST.test(digest)) throw new KilnError('ARTIFACT_NOT_FOUND', `not a sha256 digest: ${digest}`)
    return join(dir, digest)
  }
  return {
    put(bytes, expectedDigest) {
      const digest = sha256Hex(bytes)
      if (expectedDigest && digest !== expectedDigest) {
        throw new KilnError('ARTIFACT_DIGEST_MISMATCH', `artifact hashes to ${digest}, expected ${expectedDigest}`, {
          expected: expectedDigest,
          actual: digest,
        })
      }
      const target = path(digest)
      if (!existsSync(target)) {
        const tmp = `${target}.${process.pid}.tmp`
        writeFileSync(tmp, bytes)
        renameSync(tmp, target)
      }
      return digest
    },
    adopt(file, digest) {
      const target = path(digest)
      if (existsSync(target)) rmSync(file, { force: true })
      else renameSync(file, target)
    },
    has: (digest) => DIGEST.test(digest) && existsSync(path(digest)),
    size: (digest) => statSync(path(digest)).size,
    open(digest, start = 0) {
      if (!this.has(digest)) throw new KilnError('ARTIFACT_NOT_FOUND', `no artifact ${digest}`, { digest })
      return createReadStream(path(digest), { start })
    },
  }
}
