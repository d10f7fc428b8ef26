import { execFileSync } from 'node:child_process'
import Dockerode from 'dockerode'
import { afterAll, describe, expect, it } from 'vitest'
import { collectLeftover, listLeftovers } from '../src/runtime/leftovers.ts'
import { LABEL_JOB, LABEL_MANAGED, LABEL_SECRETS } from '../src/runtime/sandbox.ts'

const docker = new Dockerode({ socketPath: '/var/run/docker.sock' })
const JOB = 'job_0000000000leftsecret'
const SECRET = 'tok-4f1e9c2b7a'

/**
 * A secret job's container found after a provider crash: its log is read back from the
 * engine's own copy, which holds what the job printed unmasked. Recovery masks the values it
 * reads from the container's env (the journal never held them).
 */
describe('crash recovery of a job with secrets', () => {
  let id = ''
  afterAll(() => {
    if (id) execFileSync('docker', ['rm', '-f', id], { stdio: 'ignore' })
  })

  it('masks the secret in the recovered log', async () => {
    execFileSync('bash', ['scripts/build-images.sh', 'busybox'], { stdio: 'ignore' })
    id = execFileSync('docker', [
      'run',
      '-d',
      '--network',
      'none',
      '--label',
      `${LABEL_MANAGED}=1`,
      '--label',
      `${LABEL_JOB}=${JOB}`,
      '--label',
      `${LABEL_SECRETS}=TOKEN`,
      '-e',
      `TOKEN=${SECRET}`,
      'kiln/busybox:1',
      'sh',
      '-c',
      'echo "using $TOKEN"; echo "again $TOKEN" >&2',
    ])
      .toString()
      .trim()
    execFileSync('docker', ['wait', id], { stdio: 'ignore' })
    const [leftover] = (await listLeftovers(docker, [`${LABEL_JOB}=${JOB}`])).filter((l) => l.id === id)
    expect(leftover?.secretValues).toEqual([SECRET])
    const collected = await collectLeftover(docker, leftover!, {
      maxLogBytes: 1 << 20,
      logFileMaxBytes: 16 << 20,
      maxOutputBytes: 1 << 20,
    })
    expect(collected.log).toContain('using ***')
    expect(collected.log).toContain('again ***')
    expect(collected.log).not.toContain(SECRET)
  })
})
