import { join } from 'node:path'
import type { Connection } from '@solana/web3.js'
import type { MeshNode } from '@kiln/mesh'
import { Protocol, type Address, type Identity, type Lease, type NonceCache } from '@kiln/protocol'
import type { Bonds } from './bonds.ts'
import type { InputCache } from './inputs/cache.ts'
import { meshBlobSource } from './inputs/blob-client.ts'
import { serveJob, type JobStreamContext } from './job-stream.ts'
import type { JobJournal } from './journal.ts'
import type { Logger } from './log.ts'
import type { LogRing } from './log-ring.ts'
import { serveResult } from './result-stream.ts'
import type { DockerRuntime } from './runtime/index.ts'
import { landedOn, serveSettle } from './settle.ts'
import type { JobSlot } from './slot.ts'
import type { Wallet } from './wallet.ts'

export interface HandlersInit {
  mesh: Pick<MeshNode, 'handle' | 'open'>
  identity: Identity
  marketplace: Address
  connection: Connection
  runtime: DockerRuntime
  journal: JobJournal
  nonces: NonceCache
  dataDir: string
  gpuDeviceIds: string[]
  log: Logger
  slot: JobSlot
  bonds: Bonds
  wallet: Wallet
  ring: LogRing
  /** Admission: returns the lease with the slot taken and the bond under way, or throws why not. */
  accept(raw: unknown): Promise<Lease>
  /** The advert changed (a job began or ended). */
  changed(): void
  /** Where inputs are cached; the marketplace that sent a lease serves its uploads over the blob protocol. */
  inputCache?: InputCache
}

/**
 * The provider's mesh protocols: job (a lease in, a run and its receipt out), settle (co-sign
 * what our receipt earned) and result (a result a coordinator lost). The job protocol keeps
 * the slot, the bond watch and the dashboard's log ring in step with the run.
 */
export async function handleProtocols(init: HandlersInit): Promise<void> {
  const { mesh, identity, marketplace, journal, nonces, log, slot, bonds, wallet, ring } = init
  const jobCtx: JobStreamContext = {
    resultsDir: join(init.dataDir, 'results'),
    identity,
    runtime: init.runtime,
    journal,
    log,
    accept: init.accept,
    ...(init.inputCache
      ? {
          inputs: {
            cache: init.inputCache,
            blobs: (lease: Lease, peer: string) =>
              meshBlobSource({
                mesh: init.mesh,
                identity,
                marketplace: peer as Address,
                jobId: lease.jobId,
                escrowId: lease.escrowId,
              }),
          },
        }
      : {}),
    ...(init.gpuDeviceIds.length ? { gpuDeviceIds: init.gpuDeviceIds } : {}),
    /** The receipt goes out only once the bond is in the vault: the marketplace pays no run without it. */
    beforeReceipt: (lease: Lease) => bonds.settled(lease),
    begin(lease: Lease, abort: AbortController) {
      bonds.watch(lease, abort)
      slot.begin(lease, abort)
      ring.begin(lease.jobId)
      init.changed()
    },
    started(at: number) {
      slot.started(at)
    },
    onLog(stream: 'stdout' | 'stderr', text: string) {
      ring.push(stream, text)
    },
    end(lease: Lease) {
      bonds.forget(lease.jobId)
      wallet.stale()
      if (slot.release(lease.jobId) === 'running') init.changed()
    },
  }
  await mesh.handle(Protocol.job, (ch) =>
    serveJob(jobCtx, ch).catch((e: unknown) => log.warn({ err: String(e) }, 'job stream failed')),
  )
  // A settlement returns our bond and pays us: read the wallet again at the next check.
  await mesh.handle(Protocol.settle, (ch) =>
    serveSettle(
      { identity, marketplace, journal, nonces, log, landed: (sig) => landedOn(init.connection, sig) },
      ch,
    ).finally(() => wallet.stale()),
  )
  await mesh.handle(Protocol.result, (ch) => serveResult({ identity, marketplace, journal, nonces, log }, ch))
}
