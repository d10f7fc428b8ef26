#!/usr/bin/env node
/**
 * A dishonest provider for adversarial tests: the real provider app (same CLI, daemon, mesh,
 * escrow and Docker sandbox) with its runtime wrapped, so that after a real run it lies
 * about the result. The shipped provider has no such switch; this wrapper exists only here.
 *
 * KILN_TEST_CHEAT=alter       flip one byte of the output (a consistent receipt for a wrong result)
 * KILN_TEST_CHEAT=bad-digest  deliver the real output but sign a receipt for another digest
 * KILN_TEST_CHEAT=bad-signature  deliver the real output and receipt, with the receipt's signature broken
 */
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { run } from '../../apps/provider/src/cli/main.ts'
import type { DockerRuntime, RunOutput } from '../../apps/provider/src/runtime/index.ts'
import { Identity, Kind } from '@kiln/protocol'

/** Flips the first content byte of the first non-empty regular file in a tar. */
function tamper(tar: Buffer): Buffer {
  const out = Buffer.from(tar)
  for (let pos = 0; pos + 512 <= out.length && out[pos] !== 0;) {
    const size = parseInt(
      out
        .subarray(pos + 124, pos + 136)
        .toString('latin1')
        .replace(/\0.*$/, '')
        .trim() || '0',
      8,
    )
    const type = String.fromCharCode(out[pos + 156] ?? 0)
    if ((type === '0' || type === '\0') && size > 0) {
      out[pos + 512] = (out[pos + 512] ?? 0) ^ 0x01
      return out
    }
    pos += 512 + Math.ceil(size / 512) * 512
  }
  throw new Error('no file content to tamper with')
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex')

function lie(mode: string, output: RunOutput): RunOutput {
  if (mode === 'alter') {
    const tar = tamper(output.tar)
    return { ...output, tar, digest: sha256(tar) }
  }
  if (mode === 'bad-digest') return { ...output, digest: sha256(Buffer.concat([output.tar, Buffer.from('x')])) }
  if (mode === 'bad-signature') return output
  throw new Error(`unknown KILN_TEST_CHEAT mode ${mode}`)
}

const mode = process.env.KILN_TEST_CHEAT ?? 'alter'
if (mode === 'bad-signature') {
  // Only this process's key is touched: every receipt it seals goes out with one bit of its signature flipped.
  const sign = Identity.prototype.sign
  const receiptKind = `"kind":${JSON.stringify(Kind.receipt)}`
  Identity.prototype.sign = function (this: Identity, message: Uint8Array): Uint8Array {
    const sig = sign.call(this, message)
    if (Buffer.from(message).toString('utf8').includes(receiptKind)) sig[0] = (sig[0] ?? 0) ^ 0x01
    return sig
  }
}
const wrapRuntime = (rt: DockerRuntime): DockerRuntime => ({
  ping: () => rt.ping(),
  hasImage: (ref) => rt.hasImage(ref),
  ensureImage: (ref) => rt.ensureImage(ref),
  reconcile: () => rt.reconcile(),
  leftovers: () => rt.leftovers(),
  collect: (l, max) => rt.collect(l, max),
  kill: (id) => rt.kill(id),
  kilnPids: () => rt.kilnPids(),
  egress: () => rt.egress(),
  async run(req) {
    const r = await rt.run(req)
    return r.output ? { ...r, output: lie(mode, r.output) } : r
  },
})

const stopSignal = new Promise<void>((resolve) => {
  process.once('SIGINT', () => resolve())
  process.once('SIGTERM', () => resolve())
})
const code = await run(process.argv.slice(2), {
  dataDir: join(process.env.HOME ?? '.', '.kiln', 'cheater'),
  stopSignal,
  wrapRuntime,
})
process.exit(code)
