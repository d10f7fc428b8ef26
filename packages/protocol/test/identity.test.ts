import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { Identity, isAddress, loadIdentity, saveIdentity, verifySignature } from '../src/index.ts'

describe('identities', () => {
  it('stores keypairs in the Solana keypair file format, owner-readable only', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-id-'))
    const path = join(dir, 'id.json')
    const id = Identity.generate()
    saveIdentity(path, id)
    const bytes = JSON.parse(readFileSync(path, 'utf8')) as number[]
    expect(bytes).toHaveLength(64)
    expect(statSync(path).mode & 0o777).toBe(0o600)
    expect(loadIdentity(path).address).toBe(id.address)
    expect(isAddress(id.address)).toBe(true)
  })

  it('refuses a keypair file whose halves do not match', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-id-'))
    const path = join(dir, 'bad.json')
    const a = Identity.generate().exportSecretKey()
    const b = Identity.generate().exportSecretKey()
    writeFileSync(path, JSON.stringify([...a.slice(0, 32), ...b.slice(32)]))
    expect(() => loadIdentity(path)).toThrowError(expect.objectContaining({ kind: 'KEYPAIR_FILE_INVALID' }))
  })

  it('signs and verifies', () => {
    const id = Identity.generate()
    const msg = new TextEncoder().encode('hello')
    const sig = id.sign(msg)
    expect(verifySignature(id.address, msg, sig)).toBe(true)
    expect(verifySignature(Identity.generate().address, msg, sig)).toBe(false)
  })
})
