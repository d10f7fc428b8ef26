import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { Identity } from '@kiln/protocol'
import { kilnProvider } from './support.ts'

describe('kiln-provider command', () => {
  it('start with no marketplace configured exits 78, naming the key and the fix, before touching anything', async () => {
    const data = mkdtempSync(join(tmpdir(), 'kiln-cli-'))
    writeFileSync(
      join(data, 'config.json'),
      JSON.stringify({ mint: Identity.generate().address, bootstrap: ['/ip4/127.0.0.1/tcp/9/p2p/12D3KooWx'] }),
    )
    const r = await kilnProvider(['start', '--data', data])
    expect(r.code).toBe(78)
    expect(r.stderr).toContain('KILN_9001')
    expect(r.stderr).toMatch(/- marketplace: required, but not set\n\s+fix: pass --marketplace <address>/)
    expect(r.stderr).not.toMatch(/bootstrap|mint:/)
    expect(r.stdout).toBe('')
  })

  it('status, pause and resume with no daemon running exit 3 and say how to start one', async () => {
    const data = mkdtempSync(join(tmpdir(), 'kiln-cli-'))
    for (const cmd of [['status'], ['pause', '--stop-running'], ['resume']]) {
      const r = await kilnProvider([...cmd, '--data', data])
      expect(r.code, cmd.join(' ')).toBe(3)
      expect(r.stderr).toContain(
        `no provider daemon is running for ${data}; start it with: kiln-provider start --data ${data}`,
      )
    }
    const json = await kilnProvider(['status', '--json'], { KILN_PROVIDER_DIR: data })
    expect(json.code).toBe(3)
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, running: false })
    // A daemon that died without cleaning up (SIGKILL) left its endpoint file: still "not running".
    writeFileSync(
      join(data, 'dashboard.json'),
      JSON.stringify({ url: 'http://127.0.0.1:9/', pid: 999_999, startedAt: 0 }),
    )
    writeFileSync(join(data, 'dashboard.token'), 'x')
    const stale = await kilnProvider(['status', '--data', data])
    expect(stale.code).toBe(3)
    expect(stale.stderr).toMatch(/is not answering at http:\/\/127\.0\.0\.1:9\/.*start it with: kiln-provider start/)
  })

  it('init writes a keypair and every setting with its default', async () => {
    const data = mkdtempSync(join(tmpdir(), 'kiln-cli-'))
    const r = await kilnProvider(['init', '--data', data, '--region', 'eu-west', '--json'])
    expect(r.code).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({ created: true, missing: ['marketplace', 'bootstrap', 'mint'] })
  })
})
