import { describe, expect, it } from 'vitest'
import { Identity } from '@kiln/protocol'
import { createMeshNode } from '../src/index.ts'

describe('createMeshNode', () => {
  it('derives its PeerId from the identity and starts with zeroed counters', () => {
    const identity = Identity.generate()
    const node = createMeshNode({ identity })
    expect(node.address).toBe(identity.address)
    expect(node.peerId).toMatch(/^12D3KooW/)
    expect(node.multiaddrs()).toEqual([])
    expect(node.stats.advertsAccepted).toBe(0)
    expect(Object.values(node.stats.advertsDropped).every((n) => n === 0)).toBe(true)
  })

  it('refuses a bootstrap entry that names no peer, instead of running alone', () => {
    expect(() =>
      createMeshNode({ identity: Identity.generate(), bootstrap: ['/ip4/127.0.0.1/tcp/4001'] }),
    ).toThrowError(expect.objectContaining({ kind: 'CONFIG_INVALID' }))
    expect(() => createMeshNode({ identity: Identity.generate(), bootstrap: ['not a multiaddr'] })).toThrowError(
      expect.objectContaining({ kind: 'CONFIG_INVALID' }),
    )
  })

  it('says so when used before start', async () => {
    const node = createMeshNode({ identity: Identity.generate() })
    await expect(node.publishRaw(new Uint8Array(1))).rejects.toMatchObject({ kind: 'CONFIG_INVALID' })
    await expect(node.open(Identity.generate().address, '/x/1')).rejects.toMatchObject({ kind: 'CONFIG_INVALID' })
  })

  it('logs through the given Logger, fields first, as pino takes them', async () => {
    const lines: [object, string | undefined][] = []
    const keep = (obj: object, msg?: string) => {
      lines.push([obj, msg])
    }
    const node = createMeshNode({
      identity: Identity.generate(),
      logger: { debug: keep, info: keep, warn: keep, error: keep },
    })
    await node.start()
    try {
      expect(lines).toContainEqual([{ address: node.address, addrs: node.multiaddrs() }, 'mesh node listening'])
    } finally {
      await node.stop()
    }
  })
})
