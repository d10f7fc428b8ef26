import { execFile } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { Connection, LAMPORTS_PER_SOL, PublicKey } from '@solana/web3.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startDevchain, type Devchain } from '@kiln/devchain'
import { createEscrow, lockFunds, tokenBalance } from '@kiln/escrow'
import { loadOrCreateIdentity, randomHex, type Address, type Identity } from '@kiln/protocol'

const ROOT = resolve(import.meta.dirname, '..', '..')

/** The real `kiln` command, as its own process. */
function kiln(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [join(ROOT, 'apps/client-cli/bin/kiln.mjs'), ...args],
      { cwd: ROOT, env: { ...process.env, CI: '' } },
      (e, out, err) => {
        done({ code: e ? Number((e as { code?: number }).code ?? 1) : 0, out, err })
      },
    )
  })
}

/** A vault stuck because the marketplace lost its job: two of its three keys move it, on a real devchain. */
describe('kiln vault recover', () => {
  let chain: Devchain
  let conn: Connection
  let mint: Address
  const dir = mkdtempSync(join(tmpdir(), 'kiln-recover-'))
  const key = (name: string): { id: Identity; file: string } => ({
    id: loadOrCreateIdentity(join(dir, `${name}.json`)),
    file: join(dir, `${name}.json`),
  })
  const [client, provider, arbiter, stranger] = ['client', 'provider', 'arbiter', 'stranger'].map(key) as [
    ReturnType<typeof key>,
    ReturnType<typeof key>,
    ReturnType<typeof key>,
    ReturnType<typeof key>,
  ]

  beforeAll(async () => {
    chain = await startDevchain({ port: 0 })
    conn = new Connection(chain.rpcUrl, 'confirmed')
    mint = chain.mint as Address
    await chain.fund(arbiter.id.address, { lamports: 10 * LAMPORTS_PER_SOL })
    await chain.fund(client.id.address, { lamports: LAMPORTS_PER_SOL, tokens: 100_000_000 })
    await chain.fund(provider.id.address, { lamports: LAMPORTS_PER_SOL, tokens: 10_000_000 })
  })
  afterAll(async () => {
    await chain?.stop()
  })

  /** A vault as a lock leaves it: the client's payment and the provider's bond in it. */
  async function lockedVault(pay: number, bond: number): Promise<Address> {
    const jobId = `job_${randomHex(8)}a1`
    const { vault } = await createEscrow({ connection: conn, arbiter: arbiter.id, mint }).prepareVault({
      jobId,
      client: client.id.address,
      provider: provider.id.address,
    })
    const ref = {
      connection: conn,
      jobId,
      mint,
      vault,
      client: client.id.address,
      provider: provider.id.address,
      arbiter: arbiter.id.address,
    }
    await lockFunds({ ...ref, from: client.id, amount: pay })
    if (bond > 0) await lockFunds({ ...ref, from: provider.id, amount: bond })
    return vault
  }
  const balances = async () => Promise.all([client, provider].map((k) => tokenBalance(conn, mint, k.id.address)))

  it('refunds the client and returns the bond when the client and the provider sign, and closes the vault', async () => {
    const vault = await lockedVault(10_000_000, 3_000_000)
    const [c0, p0] = await balances()
    const r = await kiln([
      '--keypair',
      client.file,
      'vault',
      'recover',
      vault,
      '--cosigner',
      provider.file,
      '--rpc',
      chain.rpcUrl,
      '--pay',
      'provider=3000000',
    ])
    expect(r.err).toBe('')
    expect(r.code).toBe(0)
    expect(r.out).toMatch(new RegExp(`vault ${vault} emptied and closed`))
    // In the coin's words, as every other amount the CLI shows (the devchain's mint: tUSDC).
    expect(r.out).toContain(`3.00 tUSDC to provider ${provider.id.address}`)
    expect(r.out).toContain(`10.00 tUSDC to client ${client.id.address}`)
    expect(await balances()).toEqual([c0! + 10_000_000, p0! + 3_000_000])
    expect(await conn.getAccountInfo(new PublicKey(vault), 'confirmed')).toBeNull()
  })

  it('releases to the provider when the client and the arbiter key file sign', async () => {
    const vault = await lockedVault(5_000_000, 0)
    const [c0, p0] = await balances()
    const r = await kiln([
      '--json',
      '--keypair',
      client.file,
      'vault',
      'recover',
      vault,
      '--cosigner',
      arbiter.file,
      '--rpc',
      chain.rpcUrl,
      '--to',
      'provider',
    ])
    expect(r.code).toBe(0)
    expect(JSON.parse(r.out)).toMatchObject({
      ok: true,
      vault,
      payouts: [{ to: provider.id.address, amount: 5_000_000 }],
      parties: { client: client.id.address, provider: provider.id.address, arbiter: arbiter.id.address },
    })
    expect(await balances()).toEqual([c0, p0! + 5_000_000])
  })

  it("refuses a key that is not the vault's, naming its signers, and moves nothing", async () => {
    const vault = await lockedVault(2_000_000, 0)
    const r = await kiln([
      '--keypair',
      client.file,
      'vault',
      'recover',
      vault,
      '--cosigner',
      stranger.file,
      '--rpc',
      chain.rpcUrl,
    ])
    expect(r.code).toBe(2)
    expect(r.err).toMatch(
      new RegExp(
        `KILN_2001 key ${stranger.id.address} is not one of vault ${vault}'s signers \\(client ${client.id.address}, provider ${provider.id.address}, arbiter ${arbiter.id.address}\\)`,
      ),
    )
    expect(Number((await conn.getTokenAccountBalance(new PublicKey(vault), 'confirmed')).value.amount)).toBe(2_000_000)
  })
})
