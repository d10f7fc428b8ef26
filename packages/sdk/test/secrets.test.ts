import { describe, expect, it } from 'vitest'
import { Identity, openSecrets, type SecretBundle } from '@kiln/protocol'
import { createKilnClient, secretsForRun } from '../src/client.ts'

const client = Identity.generate()
const provider = Identity.generate()
const lock = { provider: provider.address, escrowId: 'job_0123456789abcdef-r1' }
const job = (secrets: string[], privateImage = false) => ({
  id: 'job_0123456789abcdef',
  maxCost: 1000,
  spec: { secrets, privateImage },
})
const bundle: SecretBundle = {
  values: { API_TOKEN: 'tok-9911', SEED: 'seed-4242', UNUSED: 'left-here' },
  registry: { server: 'localhost:5000', username: 'ci', password: 'pw-5150' },
}
const expectFor = (names: string[], privateImage = false) => ({
  client: client.address,
  jobId: 'job_0123456789abcdef',
  escrowId: lock.escrowId,
  names,
  privateImage,
})

describe('the SDK seals secrets per run', () => {
  it('seals nothing for a spec that needs no secrets', () => {
    expect(secretsForRun(client, job([]), lock, bundle)).toBeUndefined()
    expect(secretsForRun(client, job([]), lock, undefined)).toBeUndefined()
  })

  it("seals exactly the spec's names to the run's provider, and credentials only for a private image", () => {
    const env = secretsForRun(client, job(['API_TOKEN', 'SEED']), lock, bundle)!
    expect(openSecrets(provider, env, expectFor(['API_TOKEN', 'SEED']))).toEqual({
      values: { API_TOKEN: 'tok-9911', SEED: 'seed-4242' },
    })
    const priv = secretsForRun(client, job(['SEED'], true), lock, bundle)!
    expect(openSecrets(provider, priv, expectFor(['SEED'], true))).toEqual({
      values: { SEED: 'seed-4242' },
      registry: bundle.registry,
    })
    // Another run's provider cannot open it.
    expect(() => openSecrets(Identity.generate(), env, expectFor(['API_TOKEN', 'SEED']))).toThrowError(
      expect.objectContaining({ code: 'KILN_1009' }),
    )
  })

  it('refuses, naming the missing names and no value, when values or credentials are not given', () => {
    expect(() => secretsForRun(client, job(['API_TOKEN', 'MISSING_ONE']), lock, bundle)).toThrowError(
      expect.objectContaining({
        code: 'KILN_1009',
        message: expect.stringMatching(/no value given: MISSING_ONE \(/),
        context: { missing: ['MISSING_ONE'] },
      }),
    )
    expect(() => secretsForRun(client, job(['A_B', 'C_D']), lock, undefined)).toThrowError(/no value given: A_B, C_D/)
    expect(() => secretsForRun(client, job([], true), lock, { values: {} })).toThrowError(
      /privateImage but no registry credentials/,
    )
  })

  it('lockRun fails before it locks anything (or calls the marketplace) when the secrets are missing', async () => {
    // Nothing listens on this port: any step that reached the marketplace or the chain would fail as unreachable.
    const sdk = createKilnClient({ url: 'http://127.0.0.1:9', identity: client, rpcUrl: 'http://127.0.0.1:9' })
    const run = {
      state: 'matched' as const,
      lock: {
        ...lock,
        vault: provider.address,
        multisig: provider.address,
        mint: provider.address,
        amount: 10,
        deadline: null,
        arbiter: provider.address,
      },
    }
    await expect(sdk.lockRun(job(['API_TOKEN']), run)).rejects.toMatchObject({ code: 'KILN_1009' })
    // With the values it goes past the sealing, to the network.
    await expect(sdk.lockRun(job(['API_TOKEN']), run, { secrets: bundle })).rejects.toMatchObject({
      kind: 'PEER_UNREACHABLE',
    })
  })
})
