import { Identity, type CapacityAdvert } from '@kiln/protocol'
import { createMeshNode, type MeshInit, type MeshNode } from '../src/index.ts'

/** Polls `cond` until it holds; throws with `what` after `timeoutMs`. */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const until = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** Starts a node on loopback; every node started here is stopped by `stopAll`. */
export async function startNode(started: MeshNode[], init: Partial<MeshInit> = {}): Promise<MeshNode> {
  const node = createMeshNode({ identity: Identity.generate(), ...init })
  started.push(node)
  await node.start()
  return node
}

export async function stopAll(started: MeshNode[]): Promise<void> {
  await Promise.allSettled(started.splice(0).map((n) => n.stop()))
}

export function sampleAdvert(node: MeshNode, seq: number): CapacityAdvert {
  return {
    peerId: node.peerId,
    addrs: node.multiaddrs(),
    seq,
    hardware: {
      cpuCores: 8,
      memoryMb: 32_768,
      diskMb: 500_000,
      gpus: [{ index: 0, model: 'NVIDIA GeForce RTX 4090', vramMb: 24_564 }],
    },
    free: { cpu: 8, memoryMb: 30_000, gpus: 1 },
    pricePerHour: 450_000,
    region: 'local',
    version: '0.1.0',
    available: true,
  }
}

/** Prints a measured number with the test output (the lint rule bans console in code). */
export function report(line: string): void {
  process.stdout.write(`[mesh] ${line}\n`)
}
