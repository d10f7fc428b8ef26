import { chmod, mkdir, mkdtemp, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { extract, pack } from 'tar-stream'
import { isKilnError, JobSpec, sha256Hex } from '@kiln/protocol'
import { packCanonicalTar, unpackTar } from '@kiln/artifacts'
import { buildContainerOptions, buildHostConfig, containerEnv } from '../src/runtime/index.ts'

const spec = (over: Record<string, unknown> = {}): JobSpec =>
  JobSpec.parse({ image: 'kiln/matmul:1', maxPricePerHour: 1, ...over })

describe('buildHostConfig', () => {
  it('locks a CPU job down', () => {
    const hc = buildHostConfig(spec({ resources: { cpu: 1.5, memoryMb: 256 } }), '/work/job/out')
    expect(hc).toMatchObject({
      NetworkMode: 'none',
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      Privileged: false,
      ReadonlyRootfs: true,
      Tmpfs: { '/tmp': 'rw,noexec,nosuid,size=64m' },
      Mounts: [{ Type: 'bind', Source: '/work/job/out', Target: '/out', ReadOnly: false }],
      Memory: 256 * 1024 * 1024,
      MemorySwap: 256 * 1024 * 1024,
      NanoCpus: 1_500_000_000,
      PidsLimit: 256,
      IpcMode: 'private',
    })
    expect(hc.DeviceRequests).toBeUndefined()
    expect(hc.CapAdd).toBeUndefined()
  })

  it("puts a network job on the egress network it is given, never on Docker's default bridge", () => {
    expect(buildHostConfig(spec({ network: true }), '/o', { network: 'kiln-egress' }).NetworkMode).toBe('kiln-egress')
    expect(buildHostConfig(spec({ network: false }), '/o', { network: 'kiln-egress' }).NetworkMode).toBe('none')
    // Without an egress network there is no network at all, rather than the default bridge.
    expect(buildHostConfig(spec({ network: true }), '/o').NetworkMode).toBe('none')
  })

  it('requests GPUs only when the spec asks for some, with compute and utility', () => {
    const hc = buildHostConfig(spec({ resources: { cpu: 4, memoryMb: 8192, gpu: { count: 2 } } }), '/o')
    expect(hc.DeviceRequests).toEqual([{ Driver: 'nvidia', Count: 2, Capabilities: [['gpu', 'compute', 'utility']] }])
    expect(buildHostConfig(spec({ resources: { gpu: { count: 0 } } }), '/o').DeviceRequests).toBeUndefined()
  })

  it('pins GPUs by id when the provider assigns them, and refuses too few ids', () => {
    const one = spec({ resources: { gpu: { count: 1 } } })
    const hc = buildHostConfig(one, '/o', { gpuDeviceIds: ['2', '3'] })
    expect(hc.DeviceRequests).toEqual([
      { Driver: 'nvidia', DeviceIDs: ['2'], Capabilities: [['gpu', 'compute', 'utility']] },
    ])
    const two = spec({ resources: { gpu: { count: 2, models: ['4090'], minVramMb: 20000 } } })
    expect(buildHostConfig(two, '/o', { gpuDeviceIds: ['1', '3'] }).DeviceRequests).toEqual([
      { Driver: 'nvidia', DeviceIDs: ['1', '3'], Capabilities: [['gpu', 'compute', 'utility']] },
    ])
    expect(() => buildHostConfig(two, '/o', { gpuDeviceIds: ['1'] })).toThrow(/needs 2 GPUs but only 1 device ids/)
  })

  it('binds inputs read-only with private propagation, after /out', () => {
    const hc = buildHostConfig(spec(), '/w/out', {
      mounts: [
        { hostPath: '/cache/ab12', containerPath: '/in/weights' },
        { hostPath: '/cache/cd34/dir', containerPath: '/in/data/set' },
      ],
    })
    expect(hc.Mounts).toEqual([
      { Type: 'bind', Source: '/w/out', Target: '/out', ReadOnly: false },
      {
        Type: 'bind',
        Source: '/cache/ab12',
        Target: '/in/weights',
        ReadOnly: true,
        BindOptions: { Propagation: 'rprivate' },
      },
      {
        Type: 'bind',
        Source: '/cache/cd34/dir',
        Target: '/in/data/set',
        ReadOnly: true,
        BindOptions: { Propagation: 'rprivate' },
      },
    ])
    expect(hc.Binds).toBeUndefined()
  })

  it('refuses an input mount outside /in/ or from a relative host path (a bug in the caller)', () => {
    for (const containerPath of [
      '/out/x',
      '/in',
      '/in/',
      '/in/../etc',
      '/in/a/../../etc',
      '/inx/a',
      'in/a',
      '/in//a',
      '/in/a/',
    ])
      expect(
        () => buildHostConfig(spec(), '/o', { mounts: [{ hostPath: '/h', containerPath }] }),
        containerPath,
      ).toThrow(/not a plain path under \/in\//)
    expect(() => buildHostConfig(spec(), '/o', { mounts: [{ hostPath: 'cache/x', containerPath: '/in/x' }] })).toThrow(
      /"cache\/x" is not an absolute path/,
    )
  })
})

describe('buildContainerOptions', () => {
  it('labels the container and runs it as nobody unless the image names a non-root user', () => {
    const s = spec({ command: ['512'], env: { MATMUL_N: '64' } })
    const base = buildContainerOptions('job_abcdefghij', s, '/o', '')
    expect(base).toMatchObject({
      Image: 'kiln/matmul:1',
      Cmd: ['512'],
      Env: ['MATMUL_N=64', 'NVIDIA_VISIBLE_DEVICES=void', 'NVIDIA_DRIVER_CAPABILITIES=compute,utility'],
      User: '65534:65534',
      Tty: false,
    })
    expect(base.Labels).toEqual({ 'kiln.managed': '1', 'kiln.job': 'job_abcdefghij' })
    for (const root of [undefined, 'root', '0', '0:0', 'root:wheel']) {
      expect(buildContainerOptions('job_abcdefghij', s, '/o', root).User).toBe('65534:65534')
    }
    expect(buildContainerOptions('job_abcdefghij', s, '/o', 'app').User).toBe('app')
    expect(buildContainerOptions('job_abcdefghij', s, '/o', '1000:1000').User).toBe('1000:1000')
    // A provider that is not root runs every job as itself, so that /out can be its own.
    for (const image of [undefined, 'root', 'app'])
      expect(buildContainerOptions('job_abcdefghij', s, '/o', image, { user: '1001:1001' }).User).toBe('1001:1001')
  })

  it('adds the secrets to the env after the spec, and owns the NVIDIA variables', () => {
    const s = spec({ env: { A: '1', NVIDIA_VISIBLE_DEVICES: 'all' }, secrets: ['TOKEN'] })
    const o = buildContainerOptions('job_abcdefghij', s, '/o', '', { secretEnv: { TOKEN: 's3cret' } })
    // A CPU job sees no GPU even where the nvidia runtime is the engine's default and the spec or image says all.
    expect(o.Env).toEqual([
      'A=1',
      'TOKEN=s3cret',
      'NVIDIA_VISIBLE_DEVICES=void',
      'NVIDIA_DRIVER_CAPABILITIES=compute,utility',
    ])
    expect(() => containerEnv(spec({ env: { TOKEN: 'plain' } }), { TOKEN: 'x' })).toThrow(/secret TOKEN is also/)
    const gpu = spec({ resources: { gpu: { count: 2 } } })
    expect(containerEnv(gpu, {}, ['0', '2', '3'])).toContain('NVIDIA_VISIBLE_DEVICES=0,2')
    // By count only the engine knows the devices; it sets the variable itself.
    expect(containerEnv(gpu).some((e) => e.startsWith('NVIDIA_VISIBLE_DEVICES='))).toBe(false)
  })

  it('keeps the image CMD when the spec has no command', () => {
    expect(buildContainerOptions('job_abcdefghij', spec(), '/o', '')).not.toHaveProperty('Cmd')
  })
})

describe('packCanonicalTar / unpackTar', () => {
  let root: string
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'kiln-tar-test-'))
  })
  afterAll(async () => {
    await rm(root, { recursive: true, force: true })
  })

  /** The same files, made in the given order, with the given mtime and file modes. */
  async function makeTree(dir: string, order: string[], mtime: number, mode: number): Promise<void> {
    const files: Record<string, string> = {
      'b.txt': 'bee\n',
      'a/z.bin': '\u0000\u0001zz',
      'a/c.txt': 'sea',
      'a-b': 'dash',
      empty: '',
    }
    await mkdir(join(dir, 'a'), { recursive: true })
    await mkdir(join(dir, 'emptydir'))
    for (const name of order) {
      await writeFile(join(dir, name), files[name] ?? '')
      await chmod(join(dir, name), mode)
      await utimes(join(dir, name), mtime, mtime)
    }
    await utimes(join(dir, 'a'), mtime, mtime)
  }

  it('gives the same bytes regardless of mtimes, modes and creation order', async () => {
    const one = join(root, 'one')
    const two = join(root, 'two')
    await makeTree(one, ['b.txt', 'a/z.bin', 'a/c.txt', 'a-b', 'empty'], 1_000_000, 0o600)
    await makeTree(two, ['empty', 'a-b', 'a/c.txt', 'a/z.bin', 'b.txt'], 1_700_000_000, 0o755)
    const p1 = await packCanonicalTar(one)
    const p2 = await packCanonicalTar(two)
    expect(p1.digest).toBe(p2.digest)
    expect(p1.tar.equals(p2.tar)).toBe(true)
    expect(p1.digest).toBe(sha256Hex(p1.tar))
    expect(p1.bytes).toBe(p1.tar.length)
    expect(p1.files).toBe(5)

    await writeFile(join(two, 'b.txt'), 'changed\n')
    expect((await packCanonicalTar(two)).digest).not.toBe(p1.digest)
  })

  it('writes sorted entries with fixed metadata and leaves out symlinks', async () => {
    const dir = join(root, 'meta')
    await makeTree(dir, ['b.txt', 'a/z.bin', 'a/c.txt', 'a-b', 'empty'], 5, 0o700)
    await symlink('/etc/passwd', join(dir, 'link'))
    const { tar } = await packCanonicalTar(dir)
    const seen: Array<{
      name: string
      type: string
      mode: number
      mtime: number
      uid: number
      gid: number
      uname: string
    }> = []
    const ex = extract()
    const done = (async () => {
      for await (const e of ex) {
        const h = e.header
        seen.push({
          name: h.name,
          type: h.type,
          mode: h.mode,
          mtime: h.mtime.getTime(),
          uid: h.uid,
          gid: h.gid,
          uname: h.uname,
        })
        e.resume()
      }
    })()
    ex.end(tar)
    await done
    expect(seen.map((s) => s.name)).toEqual(['a', 'a-b', 'a/c.txt', 'a/z.bin', 'b.txt', 'empty', 'emptydir'])
    for (const s of seen) {
      expect(s).toMatchObject({ mtime: 0, uid: 0, gid: 0, uname: '', mode: s.type === 'directory' ? 0o755 : 0o644 })
    }
  })

  it('refuses outputs over maxBytes', async () => {
    const dir = join(root, 'big')
    await mkdir(dir)
    await writeFile(join(dir, 'blob'), Buffer.alloc(10_000))
    const err = await packCanonicalTar(dir, { maxBytes: 5_000 }).catch((e: unknown) => e)
    expect(isKilnError(err, 'OUTPUT_TOO_LARGE')).toBe(true)
    // The limit counts the archive itself, headers included.
    const err2 = await packCanonicalTar(dir, { maxBytes: 10_000 }).catch((e: unknown) => e)
    expect(isKilnError(err2, 'OUTPUT_TOO_LARGE')).toBe(true)
    expect((await packCanonicalTar(dir, { maxBytes: 20_000 })).files).toBe(1)
  })

  it('round-trips through unpackTar', async () => {
    const src = join(root, 'src')
    await makeTree(src, ['b.txt', 'a/z.bin', 'a/c.txt', 'a-b', 'empty'], 5, 0o644)
    const packed = await packCanonicalTar(src)
    const dest = join(root, 'dest')
    expect(await unpackTar(packed.tar, dest)).toEqual({ files: 5, bytes: 4 + 4 + 3 + 4 + 0 })
    expect(await readFile(join(dest, 'a/z.bin'), 'latin1')).toBe('\u0000\u0001zz')
    expect((await packCanonicalTar(dest)).digest).toBe(packed.digest)
  })

  async function tarOf(
    entries: Array<{ name: string; type?: 'file' | 'symlink' | 'directory'; linkname?: string; body?: string }>,
  ): Promise<Buffer> {
    const p = pack()
    const chunks: Buffer[] = []
    p.on('data', (c: unknown) => {
      chunks.push(c as Buffer)
    })
    const ended = new Promise<void>((resolve) => p.on('end', () => resolve()))
    for (const e of entries) {
      if (e.type === 'symlink' || e.type === 'directory')
        p.entry({ name: e.name, type: e.type, ...(e.linkname ? { linkname: e.linkname } : {}) })
      else p.entry({ name: e.name }, e.body ?? 'x')
    }
    p.finalize()
    await ended
    return Buffer.concat(chunks)
  }

  it.each([
    ['../escape.txt', "'..'"],
    ['a/../../escape.txt', "'..'"],
    ['/etc/escape.txt', 'absolute'],
  ])('refuses the entry %s', async (name, why) => {
    const dest = join(root, `hostile-${sha256Hex(name).slice(0, 8)}`)
    const err = await unpackTar(await tarOf([{ name }]), dest).catch((e: unknown) => e)
    expect(isKilnError(err, 'PAYLOAD_INVALID')).toBe(true)
    expect((err as Error).message).toContain(why)
    await expect(readFile(join(root, 'escape.txt'))).rejects.toThrow()
  })

  it('refuses symlink entries and never writes through a symlink already there', async () => {
    const dest = join(root, 'links')
    const err = await unpackTar(await tarOf([{ name: 'l', type: 'symlink', linkname: '/etc' }]), dest).catch(
      (e: unknown) => e,
    )
    expect(isKilnError(err, 'PAYLOAD_INVALID')).toBe(true)

    const outside = join(root, 'outside')
    await mkdir(outside)
    await symlink(outside, join(dest, 'planted'))
    const err2 = await unpackTar(await tarOf([{ name: 'planted/x.txt' }]), dest).catch((e: unknown) => e)
    expect(isKilnError(err2, 'PAYLOAD_INVALID')).toBe(true)
    await symlink(join(outside, 'target.txt'), join(dest, 'file-link'))
    await expect(unpackTar(await tarOf([{ name: 'file-link' }]), dest)).rejects.toThrow()
    await expect(readFile(join(outside, 'x.txt'))).rejects.toThrow()
    await expect(readFile(join(outside, 'target.txt'))).rejects.toThrow()
  })
})
