import { chmod, mkdir, mkdtemp, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { extract, pack } from 'tar-stream'
import { isKilnError, JobSpec, sha256Hex } from '@kiln/protocol'
import { packCanonicalTar, unpackTar } from '@kiln/artifacts'
import { buildContainerOptions, buildHostConfig } from '../src/runtime/index.ts'

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

  it('requests GPUs only when the spec asks for some', () => {
    const hc = buildHostConfig(spec({ resources: { cpu: 4, memoryMb: 8192, gpu: { count: 2 } } }), '/o')
    expect(hc.DeviceRequests).toEqual([{ Driver: 'nvidia', Count: 2, Capabilities: [['gpu']] }])
    expect(buildHostConfig(spec({ resources: { gpu: { count: 0 } } }), '/o').DeviceRequests).toBeUndefined()
  })

  it('pins GPUs by id when the provider assigns them', () => {
    const hc = buildHostConfig(spec({ resources: { gpu: { count: 1 } } }), '/o', { gpuDeviceIds: ['2', '3'] })
    expect(hc.DeviceRequests).toEqual([{ Driver: 'nvidia', DeviceIDs: ['2'], Capabilities: [['gpu']] }])
  })
})

describe('buildContainerOptions', () => {
  it('labels the container and runs it as nobody unless the image names a non-root user', () => {
    const s = spec({ command: ['512'], env: { MATMUL_N: '64' } })
    const base = buildContainerOptions('job_abcdefghij', s, '/o', '')
    expect(base).toMatchObject({
      Image: 'kiln/matmul:1',
      Cmd: ['512'],
      Env: ['MATMUL_N=64'],
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
