import { describe, expect, it } from 'vitest'
import { BLOCKED_RANGES, egressRules } from '../src/runtime/index.ts'

describe('egressRules', () => {
  const rules = egressRules('kiln-egress0', ['192.0.2.2', '203.0.113.7'], ['192.168.1.1'])
  const lines = rules.restore.split('\n')

  it("drops what comes from the bridge to private ranges and the host's own addresses, before Docker accepts it", () => {
    for (const range of [...BLOCKED_RANGES, '192.0.2.2/32', '203.0.113.7/32'])
      expect(lines).toContain(`-A KILN-FWD-kiln-egress0 -d ${range} -j DROP`)
    expect(BLOCKED_RANGES).toEqual([
      '10.0.0.0/8',
      '172.16.0.0/12',
      '192.168.0.0/16',
      '169.254.0.0/16',
      '100.64.0.0/10',
      '127.0.0.0/8',
    ])
    expect(rules.jumps).toContainEqual(['DOCKER-USER', '-i', 'kiln-egress0', '-j', 'KILN-FWD-kiln-egress0'])
  })

  it('drops everything from the bridge to the host itself', () => {
    expect(rules.jumps).toContainEqual(['INPUT', '-i', 'kiln-egress0', '-j', 'KILN-IN-kiln-egress0'])
    expect(lines.filter((l) => l.startsWith('-A KILN-IN-kiln-egress0')).at(-1)).toBe('-A KILN-IN-kiln-egress0 -j DROP')
  })

  it('lets DNS through to the resolver Docker forwards to (port 53 only), ahead of the drops', () => {
    for (const chain of ['KILN-FWD-kiln-egress0', 'KILN-IN-kiln-egress0']) {
      const mine = lines.filter((l) => l.startsWith(`-A ${chain} `))
      expect(mine.slice(0, 2)).toEqual([
        `-A ${chain} -d 192.168.1.1/32 -p udp -m udp --dport 53 -j RETURN`,
        `-A ${chain} -d 192.168.1.1/32 -p tcp -m tcp --dport 53 -j RETURN`,
      ])
      expect(mine.slice(2).every((l) => l.endsWith('-j DROP'))).toBe(true)
    }
  })

  it('replaces its own chains whole, in one iptables-restore transaction', () => {
    expect(lines.slice(0, 3)).toEqual(['*filter', ':KILN-FWD-kiln-egress0 - [0:0]', ':KILN-IN-kiln-egress0 - [0:0]'])
    expect(lines.at(-2)).toBe('COMMIT')
  })
})
