#!/usr/bin/env node
import { join } from 'node:path'
import { Command } from 'commander'
import Dockerode from 'dockerode'
import pino from 'pino'
import { Connection } from '@solana/web3.js'
import { createMeshNode } from '@kiln/mesh'
import { formatKilnError, isKilnError, loadOrCreateIdentity } from '@kiln/protocol'
import { loadConfig, writeConfig, type ProviderConfig } from './config.ts'
import { createProviderDaemon } from './daemon.ts'
import { detectHardware } from './hardware.ts'
import { createDockerRuntime } from './runtime/index.ts'

const VERSION = '0.1.0'

interface Opts { data: string; marketplace?: string; bootstrap?: string[]; rpc?: string; mint?: string; price?: string; region?: string; listen?: string[] }

function overrides(o: Opts): Partial<Record<keyof ProviderConfig, unknown>> {
  return { marketplace: o.marketplace, bootstrap: o.bootstrap, rpcUrl: o.rpc, mint: o.mint, pricePerHour: o.price === undefined ? undefined : Number(o.price), region: o.region, listen: o.listen }
}

const program = new Command('kiln-provider').description('Rent out this machine\'s GPUs (or CPU) on the Kiln network').version(VERSION)
const withCommon = (c: Command) => c
  .option('--data <dir>', 'data directory (keypair, config, job journal)', process.env.KILN_PROVIDER_DIR ?? join(process.env.HOME ?? '.', '.kiln', 'provider'))
  .option('--marketplace <address>', 'the marketplace (arbiter) address to accept leases from')
  .option('--bootstrap <multiaddr...>', 'mesh nodes to join through')
  .option('--rpc <url>', 'Solana JSON-RPC URL')
  .option('--mint <address>', 'stablecoin mint')
  .option('--price <units>', 'price per hour in token base units (1000000 = 1.00)')
  .option('--region <name>', 'region to advertise')
  .option('--listen <multiaddr...>', 'mesh listen addresses')

withCommon(program.command('init').description('create the keypair and a config file with defaults')).action((o: Opts) => {
  const identity = loadOrCreateIdentity(join(o.data, 'id.json'))
  const path = writeConfig(o.data, Object.fromEntries(Object.entries(overrides(o)).filter(([, v]) => v !== undefined)))
  process.stdout.write(`provider ${identity.address}\nconfig   ${path}\n`)
})

withCommon(program.command('start').description('join the mesh, advertise capacity and run leased jobs')).action(async (o: Opts) => {
  const config = loadConfig(o.data, overrides(o))
  const log = pino({ base: { app: 'provider' } }, pino.destination(2))
  const identity = loadOrCreateIdentity(join(o.data, 'id.json'))
  const { hardware, note } = await detectHardware(o.data)
  if (note) log.info({}, note)
  const mesh = createMeshNode({ identity, listen: config.listen, bootstrap: config.bootstrap })
  await mesh.start()
  const daemon = createProviderDaemon({
    identity, mesh, log, hardware, dataDir: o.data, version: VERSION,
    runtime: createDockerRuntime({ docker: new Dockerode({ socketPath: config.dockerSocket }), workDir: join(o.data, 'work') }),
    connection: new Connection(config.rpcUrl, 'confirmed'), mint: config.mint, marketplace: config.marketplace,
    pricePerHour: config.pricePerHour, region: config.region,
  })
  await daemon.start()
  process.stdout.write(`${JSON.stringify({ ready: 'provider', address: identity.address, mesh: mesh.multiaddrs(), hardware, pricePerHour: config.pricePerHour })}\n`)
  const stop = async () => {
    await daemon.stop()
    await mesh.stop().catch(() => {})
    process.exit(0)
  }
  process.on('SIGINT', () => void stop())
  process.on('SIGTERM', () => void stop())
})

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`kiln-provider: ${isKilnError(err) ? formatKilnError(err) : (err as Error).stack ?? String(err)}\n`)
  process.exit(isKilnError(err, 'CONFIG_INVALID') ? 78 : 1)
})
