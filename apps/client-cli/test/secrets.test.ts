import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { collectSecrets } from '../src/secrets.ts'

const dir = mkdtempSync(join(tmpdir(), 'kiln-secrets-'))
const file = (name: string, text: string) => {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}
const refusal = (pattern: RegExp) =>
  expect.objectContaining({ code: 'KILN_1009', message: expect.stringMatching(pattern) })

describe('collectSecrets', () => {
  it('takes values from the named env var, from a file (one trailing newline trimmed), and unflagged names from env', () => {
    const key = file('key.txt', 'line one\nline two\n\n')
    const token = file('token', 'tok-1234\r\n')
    const bundle = collectSecrets(['API_TOKEN', 'KEY', 'PLAIN'], ['API_TOKEN=@' + token, 'KEY=@' + key], {
      PLAIN: 'plain-value',
      API_TOKEN: 'not-this-one',
    })
    expect(bundle).toEqual({ values: { API_TOKEN: 'tok-1234', KEY: 'line one\nline two\n', PLAIN: 'plain-value' } })
    expect(collectSecrets(['A_1'], ['A_1'], { A_1: 'from-env' })).toEqual({ values: { A_1: 'from-env' } })
    expect(collectSecrets([], [], {})).toEqual({ values: {} })
  })

  it('names every missing value and how to give it, and shows no value', () => {
    let error: unknown
    try {
      collectSecrets(['A_B', 'C_D', 'E_F'], ['C_D'], { E_F: 'secret-ef', C_D: '' })
    } catch (e) {
      error = e
    }
    expect(error).toMatchObject({ code: 'KILN_1009', context: { missing: ['A_B', 'C_D'] } })
    expect((error as Error).message).toMatch(
      /secrets A_B, C_D have no value: give each as --secret NAME .* --secret NAME=@FILE/,
    )
    expect((error as Error).message).not.toContain('secret-ef')
  })

  it('refuses a value on the command line, an unknown or repeated name, and an unreadable or empty file', () => {
    expect(() => collectSecrets(['TOKEN'], ['TOKEN=hunter2'], {})).toThrowError(
      refusal(/never given on the command line/),
    )
    expect(() => collectSecrets(['TOKEN'], ['TOKEN=hunter2'], {})).not.toThrowError(/hunter2/)
    expect(() => collectSecrets(['TOKEN'], ['TOKN'], { TOKN: 'x' })).toThrowError(
      refusal(/--secret TOKN: the spec names no secret TOKN \(it names TOKEN\)/),
    )
    expect(() => collectSecrets(['TOKEN'], ['TOKEN', 'TOKEN'], { TOKEN: 'abcd' })).toThrowError(refusal(/given twice/))
    expect(() => collectSecrets(['TOKEN'], [`TOKEN=@${join(dir, 'nope')}`], {})).toThrowError(
      refusal(/secret TOKEN: cannot read .*nope \(ENOENT\)/),
    )
    expect(() => collectSecrets(['TOKEN'], [`TOKEN=@${file('empty', '\n')}`], {})).toThrowError(refusal(/is empty/))
    expect(() => collectSecrets(['TOKEN'], ['TOKEN=@'], {})).toThrowError(refusal(/names no file/))
  })

  it("takes registry credentials for a private image, for the image's registry host", () => {
    const pw = file('pw', 'reg-pass\n')
    const image = 'localhost:5000/acme/train:1'
    expect(collectSecrets([], [], {}, { image, privateImage: true, registryAuth: `ci:@${pw}` })).toEqual({
      values: {},
      registry: { server: 'localhost:5000', username: 'ci', password: 'reg-pass' },
    })
    expect(
      collectSecrets(
        [],
        [],
        { KILN_REGISTRY_PASSWORD: 'env-pass' },
        { image: 'acme/x', privateImage: true, registryAuth: 'bob' },
      ),
    ).toEqual({ values: {}, registry: { server: 'docker.io', username: 'bob', password: 'env-pass' } })
    expect(
      collectSecrets(
        [],
        [],
        { KILN_REGISTRY_USERNAME: 'u', KILN_REGISTRY_PASSWORD: 'p' },
        { image: 'ghcr.io/a/b', privateImage: true },
      ),
    ).toEqual({ values: {}, registry: { server: 'ghcr.io', username: 'u', password: 'p' } })
    // Credentials in the environment are not sent for a public image.
    expect(collectSecrets([], [], { KILN_REGISTRY_USERNAME: 'u', KILN_REGISTRY_PASSWORD: 'p' }, { image })).toEqual({
      values: {},
    })
  })

  it('refuses missing registry credentials, a password on the command line, and --registry-auth for a public image', () => {
    expect(() => collectSecrets([], [], {}, { image: 'ghcr.io/a/b', privateImage: true })).toThrowError(
      refusal(
        /image ghcr.io\/a\/b is private .* credentials for ghcr.io: set KILN_REGISTRY_USERNAME and KILN_REGISTRY_PASSWORD/,
      ),
    )
    expect(() =>
      collectSecrets([], [], {}, { image: 'ghcr.io/a/b', privateImage: true, registryAuth: 'ci:pa55' }),
    ).toThrowError(refusal(/password is never given on the command line/))
    expect(() => collectSecrets([], [], {}, { image: 'ghcr.io/a/b', registryAuth: 'ci' })).toThrowError(
      refusal(/--registry-auth is for a spec with privateImage: true/),
    )
  })
})
