import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Dockerode from 'dockerode'
import type { Browser } from 'playwright-core'
import { launchChromium } from '../../../test/support/browser.ts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Identity } from '@kiln/protocol'
import { createKilnClient } from '@kiln/sdk'
import { PROVIDER_FUNDS, startNetwork, waitFor, type Network, type Proc } from '../../../test/support/network.ts'
import type { JobView, StatusView } from '../src/control-views.ts'
import type { LogPage } from '../src/log-ring.ts'
import { dashboardClient, FakeNvidiaSmi, inventory, kilnProvider, type InventoryEntry } from './support.ts'

/**
 * The provider daemon as a real process on a real network (devchain, marketplace, mesh,
 * Docker): the dashboard in Chromium, the CLI, gamer mode, stopping a job, Docker down.
 * One network for the whole file; the tests run in order and share its provider.
 */
describe('provider daemon', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'kiln-provider-it-'))
  const p0Data = join(dataDir, 'provider-0')
  const smi = new FakeNvidiaSmi(join(dataDir, 'fake-nvidia'))
  let net: Network
  let p0: Proc
  let browser: Browser
  const dash = () => dashboardClient(p0Data)
  const mine = async (address = String(p0.info.address)): Promise<InventoryEntry | undefined> =>
    (await inventory(net.api)).find((p) => p.address === address)
  const until = (what: string, check: (p: InventoryEntry) => boolean, address?: string) =>
    waitFor(
      async () => {
        const p = await mine(address)
        return p !== undefined && check(p)
      },
      20_000,
      what,
    )

  beforeAll(async () => {
    // Flags from the network helper fill in the marketplace; the file adds what this test needs.
    mkdirSync(p0Data, { recursive: true })
    writeFileSync(
      join(p0Data, 'config.json'),
      JSON.stringify({ nvidiaSmi: smi.path, pollSec: 0.3, autoResumeIdleSec: 1, dashboardPort: 0 }),
    )
    net = await startNetwork({ providers: 1, dataDir })
    p0 = net.providers[0]!
    browser = await launchChromium()
  })
  afterAll(async () => {
    await browser?.close()
    await net?.stop()
  })

  it('shows its state in the dashboard; pause and resume there reach the marketplace at once', async () => {
    const { url, token } = dash()
    expect(p0.info.dashboard).toBe(url)
    expect((await fetch(`${url}api/status`)).status).toBe(401)
    const stranger = await browser.newPage()
    expect((await stranger.goto(url))?.status()).toBe(401)
    await stranger.close()

    const page = await browser.newPage()
    await page.goto(`${url}?token=${token}`)
    expect(page.url()).toBe(url) // the token left the address bar for an HttpOnly cookie
    const badge = page.getByTestId('state-badge')
    await badge.filter({ hasText: 'Available' }).waitFor({ timeout: 15_000 })
    expect(await page.getByTestId('gpus').innerText()).toMatch(/NVIDIA GeForce RTX 4090[\s\S]*87%[\s\S]*64 °C/)
    expect(await page.getByTestId('address').innerText()).toBe(p0.info.address)

    await page.getByTestId('pause').click()
    await badge.filter({ hasText: 'Paused' }).waitFor({ timeout: 5_000 })
    expect(await page.getByTestId('state-reason').innerText()).toBe('paused by owner')
    await until('the paused advert', (p) => !p.available && p.reason === 'paused by owner')
    await page.screenshot({ path: join(dataDir, 'dashboard-paused.png'), fullPage: true })

    await page.getByTestId('resume').click()
    await badge.filter({ hasText: 'Available' }).waitFor({ timeout: 5_000 })
    await until('the available advert', (p) => p.available && p.reason === null)
    await page.screenshot({ path: join(dataDir, 'dashboard.png'), fullPage: true })
    await page.close()
  })

  it('status, pause and resume from the command line', async () => {
    const status = await kilnProvider(['status', '--data', p0Data])
    expect(status.code).toBe(0)
    expect(status.stdout).toContain(`provider  ${p0.info.address}`)
    expect(status.stdout).toMatch(/state {5}running \(available\)/)
    expect(status.stdout).toMatch(/gpu 0 {5}NVIDIA GeForce RTX 4090, 24\.0 GiB, 87% busy, 64 °C/)
    expect(status.stdout).toMatch(/docker {4}ok/)

    expect((await kilnProvider(['pause', '--data', p0Data])).code).toBe(0)
    await until('the paused advert', (p) => p.reason === 'paused by owner')
    const json = await kilnProvider(['status', '--json', '--data', p0Data])
    expect(JSON.parse(json.stdout)).toMatchObject({
      ok: true,
      status: { state: 'paused', available: false, reason: 'paused by owner' },
    })
    expect((await kilnProvider(['resume', '--data', p0Data])).code).toBe(0)
    await until('the available advert', (p) => p.available)
  })

  it('pauses by itself while another program uses the GPU, and resumes after the idle time', async () => {
    smi.setProcesses([{ pid: 31337, name: 'C:\\Games\\Elden Ring\\eldenring.exe', usedMemoryMb: 7000 }])
    await until('the auto-paused advert', (p) => !p.available && p.reason === 'GPU in use by eldenring.exe')
    expect(await dash().get<StatusView>('/api/status')).toMatchObject({
      state: 'auto-paused',
      autoPause: { by: { pid: 31337, name: 'eldenring.exe' } },
    })
    const gone = Date.now()
    smi.setProcesses([])
    await until('the advert after the idle time', (p) => p.available)
    expect(Date.now() - gone).toBeGreaterThanOrEqual(900)
    expect((await dash().get<StatusView>('/api/status')).state).toBe('running')
  })

  it('pause --stop-running stops the running job: it ends failed, paid pro rata, journaled', async () => {
    const client = Identity.generate()
    await net.fund(client.address, { lamports: 2_000_000_000, tokens: 5_000_000 })
    const kiln = createKilnClient({ url: net.api, identity: client })
    const { jobId } = await kiln.submit({
      image: 'kiln/busybox:1',
      command: ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.3; done'],
      maxPricePerHour: 1_000_000,
      timeoutSec: 120,
    })
    const watching = kiln.watch(jobId)
    watching.catch(() => {}) // awaited below; a failure before then must not go unhandled
    await waitFor(
      async () =>
        (await dash().get<LogPage>('/api/logs?after=0')).entries.some(
          (e) => e.jobId === jobId && e.text.includes('tick 3'),
        ),
      30_000,
      'live logs in the dashboard',
    )
    const running = await dash().get<StatusView>('/api/status')
    expect(running.job).toMatchObject({ jobId, image: 'kiln/busybox:1' })
    expect(running.reason).toBe('running a job')
    const page = await browser.newPage()
    await page.goto(`${dash().url}?token=${dash().token}`)
    await page.getByTestId('state-badge').filter({ hasText: 'Running a job' }).waitFor({ timeout: 5_000 })
    expect(await page.getByTestId('job').innerText()).toContain(jobId)
    await page.getByTestId('logs').filter({ hasText: 'tick 5' }).waitFor({ timeout: 10_000 })
    await page.screenshot({ path: join(dataDir, 'dashboard-job.png'), fullPage: true })
    await page.close()

    // Our own job's process on the GPU is not someone else's game.
    const docker = new Dockerode({ socketPath: '/var/run/docker.sock' })
    const [c] = await docker.listContainers({ filters: { label: [`kiln.job=${jobId}`] } })
    const top = (await docker.getContainer(c!.Id).top()) as { Titles: string[]; Processes: string[][] }
    // The container's main process (its shell); the short-lived `sleep`s come and go.
    const shell = top.Processes.find((row) => row[top.Titles.indexOf('CMD')]?.startsWith('sh -c'))!
    smi.setProcesses([{ pid: Number(shell[top.Titles.indexOf('PID')]), name: '/bin/sh', usedMemoryMb: 100 }])
    await new Promise((r) => setTimeout(r, 1500))
    expect((await dash().get<StatusView>('/api/status')).state).toBe('running')
    smi.setProcesses([])

    const paused = await kilnProvider(['pause', '--stop-running', '--data', p0Data])
    expect(paused.code).toBe(0)
    expect(paused.stdout).toContain(`stopping ${jobId}`)
    const job = await watching
    expect(job.state).toBe('failed')
    expect(job.error?.message).toMatch(/paused by its owner/)
    const earned = job.paidToProvider! - job.bond!
    expect(earned).toBeGreaterThan(0)
    expect(job.refundedToClient).toBeGreaterThan(0)
    expect(earned + job.fee! + job.refundedToClient!).toBe(job.lock?.amount)

    const [rec] = (await dash().get<JobView[]>('/api/jobs')).filter((j) => j.jobId === jobId)
    expect(rec).toMatchObject({ state: 'finished', status: 'failed', delivered: true })
    expect(rec!.error).toMatch(/the run was stopped: paused by its owner/)
    await waitFor(
      async () =>
        (await dash().get<JobView[]>('/api/jobs')).some(
          (j) => j.jobId === jobId && j.settlement?.toProvider === earned,
        ),
      10_000,
      'the settlement in the journal',
    )
    expect(await dash().get('/api/earnings')).toMatchObject({ balance: PROVIDER_FUNDS + earned, paid: earned })
    expect((await kilnProvider(['resume', '--data', p0Data])).code).toBe(0)
  })

  it('sets the price: saved in the config, republished at once', async () => {
    const r = await kilnProvider(['price', '420000', '--data', p0Data])
    expect(r.code).toBe(0)
    await until('the new price', (p) => p.pricePerHour === 420_000)
    expect(JSON.parse(readFileSync(join(p0Data, 'config.json'), 'utf8'))).toMatchObject({
      pricePerHour: 420_000,
      nvidiaSmi: smi.path,
    })
    expect((await kilnProvider(['price', '0.5', '--data', p0Data])).code).toBe(2)
  })

  it('killed mid-job: at restart the run is recorded failed with the reason, and nothing is left running', async () => {
    const client = Identity.generate()
    await net.fund(client.address, { lamports: 2_000_000_000, tokens: 5_000_000 })
    const kiln = createKilnClient({ url: net.api, identity: client })
    const { jobId } = await kiln.submit({
      image: 'kiln/busybox:1',
      command: ['sh', '-c', 'while true; do echo tick; sleep 0.3; done'],
      maxPricePerHour: 1_000_000,
      timeoutSec: 30,
    })
    kiln.watch(jobId).catch(() => {}) // locks the funds; the job's end is not this test's subject
    await waitFor(
      async () => (await dash().get<LogPage>('/api/logs?after=0')).entries.some((e) => e.jobId === jobId),
      30_000,
      'the job to run',
    )
    const docker = new Dockerode({ socketPath: '/var/run/docker.sock' })
    const ofJob = { filters: { label: [`kiln.job=${jobId}`] } }
    const exited = new Promise((r) => p0.child.once('exit', r))
    p0.child.kill('SIGKILL')
    await exited
    expect(await docker.listContainers(ofJob)).toHaveLength(1) // the engine keeps it running without us

    p0 = await net.startProvider(0)
    const [rec] = (await dash().get<JobView[]>('/api/jobs')).filter((j) => j.jobId === jobId)
    expect(rec).toMatchObject({
      state: 'failed',
      status: 'failed',
      error: 'provider restarted mid-job: its container was still running and was stopped',
      earned: 0,
    })
    expect(await docker.listContainers({ all: true, ...ofJob })).toEqual([])
    expect(await docker.listContainers({ all: true, filters: { label: [`kiln.owner=${p0.info.address}`] } })).toEqual(
      [],
    )
    await until('the restarted provider', (p) => p.available)
    await kiln.cancel(jobId).catch(() => {})
  })

  it('with the Docker engine unreachable it advertises itself unavailable, says why, stays up and recovers', async () => {
    // The socket path is a link the test can point at nothing, then at the real engine.
    const sock = join(dataDir, 'docker.sock')
    symlinkSync('/nonexistent/docker.sock', sock)
    const p1Data = join(dataDir, 'provider-1')
    mkdirSync(p1Data, { recursive: true })
    writeFileSync(join(p1Data, 'config.json'), JSON.stringify({ dockerSocket: sock, pollSec: 0.3, dashboardPort: 0 }))
    const p1 = await net.startProvider(1)
    const address = String(p1.info.address)
    await until(
      'the provider without Docker',
      (p) =>
        !p.available &&
        /^Docker engine unavailable: cannot reach the Docker engine at .*docker\.sock/.test(p.reason ?? ''),
      address,
    )
    expect((await mine(address))?.hardware.gpus).toEqual([]) // no nvidia-smi here: CPU-only, and it says so
    const status = await kilnProvider(['status', '--data', p1Data])
    expect(status.stdout).toMatch(/docker {4}unavailable: cannot reach the Docker engine/)
    expect(status.stdout).toMatch(/no GPU \(CPU-only provider\)/)
    expect(p1.child.exitCode).toBeNull()

    rmSync(sock)
    symlinkSync('/var/run/docker.sock', sock)
    await until('the provider with Docker back', (p) => p.available, address)
    expect(p1.child.exitCode).toBeNull()
  })
})
