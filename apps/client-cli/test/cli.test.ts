import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { run } from '../src/main.ts'

describe('kiln CLI', () => {
  it('refuses a malformed spec before contacting anyone: names the field, exits 2', async () => {
    const { dir, io, out, err } = setup()
    const spec = join(dir, 'job.yaml')
    writeFileSync(spec, 'image: kiln/matmul:1\nmaxPricePerHour: 1000000\nresources:\n  memoryMb: 1\n')
    // The API points at a closed port: had the CLI tried to send anything, it would fail differently.
    const code = await run(['--api', 'http://127.0.0.1:9', '--keypair', join(dir, 'id.json'), 'submit', spec], io)
    expect(code).toBe(2)
    expect(err.join('\n')).toMatch(/KILN_2001/)
    expect(err.join('\n')).toMatch(/resources\.memoryMb: .*\(expected >= 16\)/)
    expect(out).toEqual([])
  })

  it('reports an unreadable spec file with exit 2 and --json output', async () => {
    const { dir, io, out } = setup()
    const code = await run(['--json', '--keypair', join(dir, 'id.json'), 'submit', join(dir, 'missing.yaml')], io)
    expect(code).toBe(2)
    expect(JSON.parse(out[0]!)).toMatchObject({ ok: false, error: { code: 'KILN_2002', kind: 'SPEC_FILE_UNREADABLE' } })
  })

  it('creates a keypair once and reports the same address after', async () => {
    const { dir, io, out } = setup()
    expect(await run(['--json', '--keypair', join(dir, 'id.json'), 'keygen'], io)).toBe(0)
    expect(await run(['--json', '--keypair', join(dir, 'id.json'), 'keygen'], io)).toBe(0)
    const [a, b] = out.map((l) => JSON.parse(l) as { address: string; created: boolean })
    expect(a!.created).toBe(true)
    expect(b!.created).toBe(false)
    expect(b!.address).toBe(a!.address)
  })

  it('exits 4 when the marketplace cannot be reached', async () => {
    const { dir, io } = setup()
    await run(['--keypair', join(dir, 'id.json'), 'keygen'], io)
    expect(await run(['--api', 'http://127.0.0.1:9', '--keypair', join(dir, 'id.json'), 'providers'], io)).toBe(4)
  })
})

function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-cli-'))
  const out: string[] = []
  const err: string[] = []
  return { dir, out, err, io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) } }
}
