import { readFileSync } from 'node:fs'
import type { Channel } from '@kiln/mesh'
import {
  Kind,
  KilnError,
  open,
  OUTPUT_CHUNK_BYTES,
  ResultRequest,
  seal,
  sha256Hex,
  type Address,
  type Identity,
  type NonceCache,
} from '@kiln/protocol'
import type { JobJournal } from './journal.ts'
import { toWire } from './job-stream.ts'
import type { Logger } from './log.ts'

export interface ResultStreamContext {
  identity: Identity
  marketplace: Address
  journal: JobJournal
  nonces: NonceCache
  log: Logger
}

/**
 * Hands a run's result to a coordinator that lost the job stream (it restarted): the output
 * kept on disk and the signed receipt, or word that the run is still going or was lost.
 */
export async function serveResult(ctx: ResultStreamContext, ch: Channel): Promise<void> {
  try {
    const raw = (await ch.nextJson<{ envelope?: unknown }>(15_000))?.envelope
    const { payload } = open(raw, {
      kind: Kind.resultRequest,
      schema: ResultRequest,
      signer: ctx.marketplace,
      nonces: ctx.nonces,
    })
    const rec = ctx.journal.get(payload.jobId)
    if (!rec)
      throw new KilnError('JOB_NOT_FOUND', `no lease ${payload.jobId} on record: it never reached this provider`)
    if (rec.state === 'accepted' || rec.state === 'running') return await ch.sendJson({ t: 'running' })
    if (rec.state === 'failed' || !rec.receipt) throw new KilnError('CONTAINER_FAILED', rec.error ?? 'the run was lost')
    const digest = rec.receipt.outputDigest
    if (digest) {
      const tar = rec.outputPath ? readFileSync(rec.outputPath) : undefined
      if (!tar || sha256Hex(tar) !== digest)
        throw new KilnError('ARTIFACT_NOT_FOUND', "the run's output is no longer on this provider")
      const chunks = Math.ceil(tar.byteLength / OUTPUT_CHUNK_BYTES)
      await ch.sendJson({ t: 'output', bytes: tar.byteLength, digest, chunks })
      for (let i = 0; i < chunks; i++) await ch.send(tar.subarray(i * OUTPUT_CHUNK_BYTES, (i + 1) * OUTPUT_CHUNK_BYTES))
    }
    await ch.sendJson({ t: 'receipt', envelope: seal(ctx.identity, Kind.receipt, rec.receipt, { ttlMs: 3600_000 }) })
    ctx.journal.update(payload.jobId, { delivered: true })
    ctx.log.info({ jobId: payload.jobId }, 'result delivered after the job stream was lost')
    await ch.nextJson(15_000).catch(() => undefined)
  } catch (e) {
    const error = toWire(e)
    ctx.log.warn({ code: error.code, err: error.message }, 'result request answered: lost')
    await ch.sendJson({ t: 'lost', error }).catch(() => {})
  }
}
