import { describe, expect, it, vi } from 'vitest'
import {
  escrowIdFor,
  Identity,
  JobSpec,
  Kind,
  NonceCache,
  seal,
  sealSecrets,
  type Hardware,
  type Lease,
} from '@kiln/protocol'
import { acceptLease, leaseProblems, stateProblems, type LeaseState, type LockChecker } from '../src/admission.ts'

describe('leaseProblems', () => {
  it('finds nothing wrong with a lease for us, from our marketplace, that fits and pays our price', () => {
    const { lease, state } = setup()
    expect(leaseProblems(lease, state)).toEqual([])
  })

  it('refuses while paused, saying why', () => {
    const { lease, state } = setup()
    expect(leaseProblems(lease, { ...state, pausedReason: 'paused by owner' })).toEqual([
      { kind: 'LEASE_REFUSED', message: 'this provider is paused (paused by owner)' },
    ])
    expect(leaseProblems(lease, { ...state, pausedReason: 'GPU in use by game.exe' })[0]?.message).toMatch(
      /GPU in use by game\.exe/,
    )
  })

  it('refuses a job that asks for more CPU, memory or GPUs than this machine has', () => {
    const { lease, state } = setup()
    const asking = (resources: object) => ({ ...lease, spec: JobSpec.parse({ ...lease.spec, resources }) })
    expect(leaseProblems(asking({ cpu: 16 }), state).map((p) => p.message)).toEqual([
      'the job asks for 16 CPUs; this provider has 4',
    ])
    expect(leaseProblems(asking({ memoryMb: 65_536 }), state).map((p) => p.message)).toEqual([
      'the job asks for 65536 MiB of memory; this provider has 8192',
    ])
    expect(leaseProblems(asking({ gpu: { count: 2 } }), state)[0]?.message).toMatch(
      /asks for 2 GPU\(s\); this provider has NVIDIA GeForce RTX 4090/,
    )
    expect(leaseProblems(asking({ gpu: { count: 1, models: ['H100'] } }), state)[0]?.message).toMatch(/of H100/)
    expect(leaseProblems(asking({ gpu: { count: 1, minVramMb: 40_000 } }), state)[0]?.message).toMatch(/40000 MiB VRAM/)
    expect(leaseProblems(asking({ gpu: { count: 1, models: ['4090'], minVramMb: 20_000 } }), state)).toEqual([])
    expect(
      leaseProblems(asking({ gpu: { count: 1 } }), { ...state, hardware: { ...state.hardware, gpus: [] } })[0]?.message,
    ).toMatch(/this provider has no GPU/)
  })

  it('refuses a job that asks for network access unless this provider takes such jobs', () => {
    const { lease, state } = setup()
    const networked = { ...lease, spec: JobSpec.parse({ ...lease.spec, network: true }) }
    expect(leaseProblems(networked, { ...state, noNetworkJobs: 'acceptNetworkJobs is off in its config' })).toEqual([
      {
        kind: 'LEASE_REFUSED',
        message:
          'the job asks for network access, which this provider does not take (acceptNetworkJobs is off in its config)',
      },
    ])
    expect(leaseProblems(networked, state)).toEqual([])
    expect(leaseProblems(lease, { ...state, noNetworkJobs: 'acceptNetworkJobs is off in its config' })).toEqual([])
  })

  it('refuses a price below ours', () => {
    const { lease, state } = setup()
    expect(leaseProblems({ ...lease, pricePerHour: 359_999 }, state)).toEqual([
      { kind: 'LEASE_REFUSED', message: "the lease pays 359999/h, below this provider's price 360000/h" },
    ])
  })

  it('refuses a second job while one runs, and a lease already accepted once', () => {
    const { lease, state } = setup()
    expect(leaseProblems(lease, { ...state, runningJobId: 'job_0000000000other' })[0]?.message).toBe(
      'already running a job (job_0000000000other)',
    )
    expect(leaseProblems(lease, { ...state, acceptedVault: lease.vault })[0]?.message).toBe(
      'this lease was already accepted once',
    )
    // The same job placed again (a new attempt) comes with a new vault: that is a new lease.
    expect(leaseProblems(lease, { ...state, acceptedVault: Identity.generate().address })).toEqual([])
  })

  it('refuses an escrow id that names another job, another provider, arbiter or mint, and a lapsed lease', () => {
    const { lease, state } = setup()
    expect(leaseProblems({ ...lease, escrowId: escrowIdFor('job_0000000000another', 1) }, state)[0]?.message).toBe(
      'the escrow id does not belong to this job',
    )
    expect(leaseProblems({ ...lease, provider: Identity.generate().address }, state)[0]?.message).toBe(
      'the lease names another provider',
    )
    expect(leaseProblems({ ...lease, arbiter: Identity.generate().address }, state)[0]?.message).toMatch(
      /another arbiter/,
    )
    expect(leaseProblems({ ...lease, mint: Identity.generate().address }, state)[0]?.message).toMatch(/pays in mint/)
    expect(leaseProblems({ ...lease, startBy: state.now - 1 }, state)[0]?.message).toMatch(/lapsed/)
  })

  it('refuses until crash recovery has squared the journal with Docker', () => {
    const { lease, state } = setup()
    expect(leaseProblems(lease, { ...state, recovering: true })).toEqual([
      { kind: 'LEASE_REFUSED', message: 'this provider is still recovering jobs from before a restart' },
    ])
  })

  it('says the engine is down with its own code', () => {
    const { lease, state } = setup()
    expect(leaseProblems(lease, { ...state, dockerProblem: 'cannot reach the Docker engine at /x.sock' })).toEqual([
      { kind: 'DOCKER_UNAVAILABLE', message: 'Docker engine unavailable: cannot reach the Docker engine at /x.sock' },
    ])
  })
})

describe('stateProblems', () => {
  it('holds the rules about our own state alone, in the order leaseProblems gives them', () => {
    const { lease, state } = setup()
    const busy = { ...state, pausedReason: 'paused by owner', runningJobId: 'job_0000000000other', recovering: true }
    expect(stateProblems(state)).toEqual([])
    expect(stateProblems(busy).map((p) => p.message)).toEqual([
      'this provider is paused (paused by owner)',
      'already running a job (job_0000000000other)',
      'this provider is still recovering jobs from before a restart',
    ])
    expect(leaseProblems(lease, busy)).toEqual(stateProblems(busy))
  })
})

describe('acceptLease', () => {
  it('accepts a lease signed by the marketplace once the vault is funded on chain', async () => {
    const { lease, state, market } = setup()
    const checkLock = vi.fn<LockChecker>(async () => ({ ok: true, balance: lease.lockAmount }))
    const got = await acceptLease(seal(market, Kind.lease, lease), {
      marketplace: market.address,
      nonces: new NonceCache(),
      state: () => state,
      checkLock,
    })
    expect(got).toEqual(lease)
    expect(checkLock).toHaveBeenCalledWith(
      expect.objectContaining({
        jobId: lease.escrowId,
        vault: lease.vault,
        amount: lease.lockAmount,
        provider: state.self,
      }),
    )
  })

  it('refuses when the escrow is not funded on chain, and nothing is accepted', async () => {
    const { lease, state, market } = setup()
    const checkLock: LockChecker = async () => ({
      ok: false,
      reason: `vault ${lease.vault} holds 0, less than ${lease.lockAmount}`,
    })
    const err = await acceptLease(seal(market, Kind.lease, lease), {
      marketplace: market.address,
      nonces: new NonceCache(),
      state: () => state,
      checkLock,
    }).catch((e: unknown) => e)
    expect(err).toMatchObject({ name: 'KilnError', kind: 'ESCROW_NOT_FUNDED' })
    expect((err as Error).message).toMatch(/escrow not funded on chain: vault .* holds 0/)
  })

  it('refuses a lease signed by anyone but the marketplace before looking at the chain', async () => {
    const { lease, state, market } = setup()
    const checkLock = vi.fn<LockChecker>(async () => ({ ok: true, balance: 1 }))
    const mallory = Identity.generate()
    const err = await acceptLease(seal(mallory, Kind.lease, { ...lease, arbiter: mallory.address }), {
      marketplace: market.address,
      nonces: new NonceCache(),
      state: () => state,
      checkLock,
    }).catch((e: unknown) => e)
    expect(err).toMatchObject({ name: 'KilnError', kind: 'ENVELOPE_WRONG_SIGNER' })
    expect(checkLock).not.toHaveBeenCalled()
  })

  it('refuses on the first rule that fails, without reading the chain, and names every problem', async () => {
    const { lease, state, market } = setup()
    const checkLock = vi.fn<LockChecker>(async () => ({ ok: true, balance: 1 }))
    const err = await acceptLease(seal(market, Kind.lease, { ...lease, pricePerHour: 1 }), {
      marketplace: market.address,
      nonces: new NonceCache(),
      state: () => ({ ...state, pausedReason: 'paused by owner' }),
      checkLock,
    }).catch((e: unknown) => e)
    expect(err).toMatchObject({
      name: 'KilnError',
      kind: 'LEASE_REFUSED',
      message: 'this provider is paused (paused by owner)',
    })
    expect((err as { context: { problems: unknown[] } }).context.problems).toHaveLength(2)
    expect(checkLock).not.toHaveBeenCalled()
  })

  it('checks our own state again after the vault: a pause or another lease that came meanwhile refuses, and claims nothing', async () => {
    const { lease, state, market } = setup()
    const claim = vi.fn<(l: Lease) => void>()
    // The state as it is when the vault check ends: what came while the chain was read.
    const acceptWhile = (during: Partial<LeaseState>) => {
      let now = state
      const checkLock: LockChecker = async () => {
        now = { ...state, ...during }
        return { ok: true, balance: lease.lockAmount }
      }
      return acceptLease(seal(market, Kind.lease, lease), {
        marketplace: market.address,
        nonces: new NonceCache(),
        state: () => now,
        checkLock,
        claim,
      })
    }
    await expect(acceptWhile({ pausedReason: 'paused by owner' })).rejects.toMatchObject({
      kind: 'LEASE_REFUSED',
      message: 'this provider is paused (paused by owner)',
    })
    await expect(acceptWhile({ runningJobId: 'job_0000000000other' })).rejects.toMatchObject({
      kind: 'LEASE_REFUSED',
      message: 'already running a job (job_0000000000other)',
    })
    await expect(acceptWhile({ dockerProblem: 'gone' })).rejects.toMatchObject({
      kind: 'DOCKER_UNAVAILABLE',
      message: 'Docker engine unavailable: gone',
    })
    expect(claim).not.toHaveBeenCalled()
  })

  it('claims the slot for an accepted lease, once, after every check passed', async () => {
    const { lease, state, market } = setup()
    const claim = vi.fn<(l: Lease) => void>()
    const got = await acceptLease(seal(market, Kind.lease, lease), {
      marketplace: market.address,
      nonces: new NonceCache(),
      state: () => state,
      checkLock: async () => ({ ok: true, balance: 1 }),
      claim,
    })
    expect(claim).toHaveBeenCalledExactlyOnceWith(got)
    const unfunded = vi.fn<(l: Lease) => void>()
    await acceptLease(seal(market, Kind.lease, lease), {
      marketplace: market.address,
      nonces: new NonceCache(),
      state: () => state,
      checkLock: async () => ({ ok: false, reason: 'empty' }),
      claim: unfunded,
    }).catch(() => {})
    expect(unfunded).not.toHaveBeenCalled()
  })

  it('refuses a replayed envelope', async () => {
    const { lease, state, market } = setup()
    const init = {
      marketplace: market.address,
      nonces: new NonceCache(),
      state: () => state,
      checkLock: async () => ({ ok: true as const, balance: 1 }),
    }
    const envelope = seal(market, Kind.lease, lease)
    await acceptLease(envelope, init)
    await expect(acceptLease(envelope, init)).rejects.toMatchObject({ kind: 'ENVELOPE_REPLAYED' })
  })
})

describe('acceptLease: sealed secrets', () => {
  it("opens only secrets sealed by the lease's client to this provider, before the vault is checked", async () => {
    const { lease: base, state, market } = setup()
    const me = Identity.generate()
    const client = Identity.generate()
    const spec = JobSpec.parse({ image: 'kiln/busybox:1', maxPricePerHour: 1_000_000, secrets: ['HF_TOKEN'] })
    const lease = { ...base, client: client.address, provider: me.address, spec }
    const to = { provider: me.address, jobId: lease.jobId, escrowId: lease.escrowId }
    const checkLock = vi.fn<LockChecker>(async () => ({ ok: true, balance: lease.lockAmount }))
    const init = { identity: me, marketplace: market.address, state: () => ({ ...state, self: me.address }), checkLock }
    const good = sealSecrets(client, to, { values: { HF_TOKEN: 'hf_abcdefgh' } })
    const accepted = await acceptLease(seal(market, Kind.lease, { ...lease, secrets: good }), {
      ...init,
      nonces: new NonceCache(),
    })
    expect(accepted.spec.secrets).toEqual(['HF_TOKEN'])
    const other = Identity.generate()
    for (const secrets of [
      undefined,
      sealSecrets(client, { ...to, provider: other.address }, { values: { HF_TOKEN: 'hf_abcdefgh' } }),
      sealSecrets(Identity.generate(), to, { values: { HF_TOKEN: 'hf_abcdefgh' } }),
    ]) {
      checkLock.mockClear()
      await expect(
        acceptLease(seal(market, Kind.lease, { ...lease, secrets }), { ...init, nonces: new NonceCache() }),
      ).rejects.toMatchObject({ kind: 'SECRETS_UNSEALABLE' })
      expect(checkLock).not.toHaveBeenCalled()
    }
  })
})

function setup() {
  const market = Identity.generate()
  const self = Identity.generate().address
  const mint = Identity.generate().address
  const hardware: Hardware = {
    cpuCores: 4,
    memoryMb: 8192,
    diskMb: 100_000,
    gpus: [{ index: 0, model: 'NVIDIA GeForce RTX 4090', vramMb: 24_564 }],
  }
  const now = Date.now()
  const jobId = 'job_0000000000leasetest'
  const lease: Lease = {
    jobId,
    client: Identity.generate().address,
    provider: self,
    arbiter: market.address,
    spec: JobSpec.parse({ image: 'kiln/busybox:1', command: ['true'], maxPricePerHour: 1_000_000 }),
    pricePerHour: 360_000,
    lockAmount: 60_000,
    mint,
    multisig: Identity.generate().address,
    vault: Identity.generate().address,
    escrowId: escrowIdFor(jobId, 1),
    startBy: now + 60_000,
    bond: 0,
    feeBps: 0,
  }
  const state: LeaseState = { self, marketplace: market.address, mint, pricePerHour: 360_000, hardware, now }
  return { market, lease, state }
}
