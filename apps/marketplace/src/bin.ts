import { join, dirname } from 'node:path'
import { existsSync, mkdirSync } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { fileURLToPath } from 'node:url'
import { Connection } from '@solana/web3.js'
import pino from 'pino'
import { openDb } from '@kiln/db'
import { createEscrow } from '@kiln/escrow'
import { createMeshNode } from '@kiln/mesh'
import { formatKilnError, isKilnError, loadOrCreateIdentity, tokenUnitFor, type Address } from '@kiln/protocol'
import { createLifecycleQueues } from '@kiln/scheduler'
import { createCoordinator, createFileArtifactStore, verificationSecret } from './coordinator/index.ts'
import { escrowIdOf } from './coordinator/types.ts'
import { readEnv } from './env.ts'
import { createHttpServer } from './server.ts'
import { serveBlobs } from './blobs/serve.ts'
import { createBlobStore } from './blobs/store.ts'
import { mayFetchInput } from './inputs/authorize.ts'

const VERSION = '0.1.0'

/** Starts the marketplace: database, mesh, escrow, coordinator, API and web app, in that order. */
async function main(): Promise<void> {
  const env = readEnv()
  const log = pino(
    { level: env.KILN_LOG_LEVEL, base: { app: 'marketplace', instance: env.KILN_INSTANCE } },
    pino.destination(2),
  )
  const arbiter = loadOrCreateIdentity(join(env.KILN_DATA_DIR, 'arbiter.json'))
  const connection = new Connection(env.SOLANA_RPC_URL, 'confirmed')
  const mint = env.KILN_MINT as Address
  const token = tokenUnitFor(mint, env.KILN_TOKEN_SYMBOL)
  const { db, close: closeDb } = await openDb({
    databaseUrl: env.DATABASE_URL,
    dataDir: join(env.KILN_DATA_DIR, 'db'),
    onError: (err) => log.warn({ err: err.message }, 'database connection lost; reconnecting'),
    recovery: `Keep ${join(env.KILN_DATA_DIR, 'arbiter.json')}, the arbiter key, whatever you do: a vault still holding tokens for a job the new database does not know is emptied by two of its three keys (kiln vault recover <vault>, see the README: Recovering a vault)`,
  })
  // The mesh key is per process (two peers may not share one); the arbiter key only signs.
  const meshIdentity = loadOrCreateIdentity(join(env.KILN_DATA_DIR, `mesh-${env.KILN_INSTANCE}.json`))
  const mesh = createMeshNode({ identity: meshIdentity, listen: [env.KILN_MESH_LISTEN], bootstrap: env.KILN_BOOTSTRAP })
  await mesh.start()
  const redis = new URL(env.REDIS_URL)
  const queues = createLifecycleQueues({
    connection: {
      host: redis.hostname,
      port: Number(redis.port || 6379),
      password: redis.password || undefined,
      maxRetriesPerRequest: null,
    },
    prefix: env.KILN_QUEUE_PREFIX,
    onError: (task, jobId, err) => log.warn({ task, jobId, err: String(err) }, 'lifecycle task failed'),
  })
  const artifacts = createFileArtifactStore(join(env.KILN_DATA_DIR, 'artifacts'))
  const blobs = createBlobStore({ dir: join(env.KILN_DATA_DIR, 'blobs'), db })
  const inputsTmp = join(env.KILN_DATA_DIR, 'artifacts-tmp')
  mkdirSync(inputsTmp, { recursive: true })
  const coordinator = createCoordinator({
    inputs: { owns: (client, sha256) => blobs.owns(client, sha256), tmpDir: inputsTmp },
    arbiter,
    mint,
    connection,
    db,
    queues,
    mesh,
    artifacts,
    log,
    escrow: createEscrow({ connection, arbiter, mint }),
    config: {
      lockWindowMs: env.KILN_LOCK_WINDOW_MS,
      providerSilenceMs: 120_000,
      rematchMs: 1000,
      feeBps: env.KILN_FEE_BPS,
      rerunWaitMs: env.KILN_RERUN_WAIT_MS,
      minReputation: env.KILN_MIN_REPUTATION,
      parkAfterLapses: env.KILN_PARK_AFTER_LAPSES,
      token,
      verification: { p: env.KILN_SPOT_CHECK_P, bondRatio: env.KILN_BOND_RATIO },
      verifySecret: env.KILN_VERIFY_SECRET ? Buffer.from(env.KILN_VERIFY_SECRET, 'hex') : verificationSecret(arbiter),
    },
  })
  await coordinator.start()
  // Providers fetch a lease's inputs here: uploads from the blob store, other jobs' outputs
  // (and files taken out of them) from the artifact store.
  const c = coordinator.ctx
  await serveBlobs({
    mesh,
    log,
    store: {
      size: (sha) => (artifacts.has(sha) ? artifacts.size(sha) : blobs.size(sha)),
      open: (sha, start) => (artifacts.has(sha) ? artifacts.open(sha, start) : blobs.open(sha, start)),
    },
    authorize: (provider, req) =>
      mayFetchInput({ family: (id) => c.store.family(id), escrowIdOf: (run) => escrowIdOf(c, run) }, provider, req),
  })

  const web = env.KILN_WEB === 'off' ? undefined : await startWeb(env.KILN_WEB === 'on', log)
  const server = createHttpServer({
    api: {
      coordinator: coordinator.ctx,
      info: {
        arbiter: arbiter.address,
        mint,
        token,
        rpcUrl: env.SOLANA_RPC_URL,
        meshAddrs: mesh.multiaddrs(),
        version: VERSION,
        verification: { p: env.KILN_SPOT_CHECK_P, bondRatio: env.KILN_BOND_RATIO },
        feeBps: env.KILN_FEE_BPS,
        minReputation: env.KILN_MIN_REPUTATION,
      },
    },
    artifacts,
    blobs,
    web,
  })
  await new Promise<void>((resolve) => server.listen(env.KILN_PORT, env.KILN_HOST, resolve))
  const addr = server.address()
  const port = typeof addr === 'object' && addr ? addr.port : env.KILN_PORT
  const ready = {
    ready: 'marketplace',
    instance: env.KILN_INSTANCE,
    api: `http://${env.KILN_HOST}:${port}`,
    arbiter: arbiter.address,
    mint,
    mesh: mesh.multiaddrs(),
    web: Boolean(web),
  }
  process.stdout.write(`${JSON.stringify(ready)}\n`)
  log.info(ready, 'marketplace ready')

  let stopping = false
  const stop = async (signal: string) => {
    if (stopping) return
    stopping = true
    log.info({ signal }, 'stopping')
    server.close()
    await coordinator.stop().catch(() => {})
    await mesh.stop().catch(() => {})
    await closeDb().catch(() => {})
    process.exit(0)
  }
  process.on('SIGINT', () => void stop('SIGINT'))
  process.on('SIGTERM', () => void stop('SIGTERM'))
}

async function startWeb(required: boolean, log: pino.Logger) {
  const dir = join(dirname(fileURLToPath(import.meta.url)), '..')
  if (!existsSync(join(dir, '.next', 'BUILD_ID'))) {
    if (required) throw new Error('KILN_WEB=on but the web app is not built: run `npm run build -w @kiln/marketplace`')
    log.warn({}, 'web app not built; serving the API only (npm run build -w @kiln/marketplace)')
    return undefined
  }
  const { default: next } = await import('next')
  const app = next({ dev: false, dir })
  await app.prepare()
  const handle = app.getRequestHandler()
  return (req: IncomingMessage, res: ServerResponse) => handle(req, res)
}

main().catch((err: unknown) => {
  process.stderr.write(
    `marketplace failed to start: ${isKilnError(err) ? formatKilnError(err) : ((err as Error).stack ?? String(err))}\n`,
  )
  process.exit(1)
})
