import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, chown, lstat, mkdir, readdir, rm, rmdir, stat, statfs, truncate, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)
const MiB = 1024 * 1024
/** Past outputs.maxBytes by this much on disk, the job is stopped: block rounding and directories stay under it. */
export const OUTPUT_MARGIN_BYTES = MiB
/** The image next to `out` in the job dir; its size is the hard cap. */
const IMAGE = 'out.img'

export interface OutDirInit {
  jobDir: string
  maxBytes: number
  /** Who the container runs as; undefined: it runs as us, and the dir is ours already. */
  owner?: { uid: number; gid: number }
  /** Give /out a filesystem of its own, sized to the limit (needs root and loop devices). */
  ownFs: boolean
}

/**
 * The host side of a job's /out: mode 0700 inside the provider's 0700 job dir, owned by the
 * user the container runs as, so nothing else on the host can write it. With `ownFs`, a
 * sparse ext4 image loop-mounted there caps what the job can put on the provider's disk at
 * about maxBytes (the kernel says "no space left" past it); without, only the watch does.
 */
export interface OutDir {
  path: string
  /** The job's writes are capped by a filesystem of their own. */
  capped: boolean
  /** Bytes the job holds on disk in /out (allocated blocks, not apparent sizes). */
  used(): Promise<number>
  /** Unmounts (if mounted) and removes the image; the job dir itself is the caller's. */
  release(): Promise<void>
}

/** mkfs lives in /usr/sbin, which is not on every user's PATH. */
const sh = (cmd: string, args: string[]) =>
  run(cmd, args, { timeout: 30_000 }).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'ENOENT') throw e
    return run(`/usr/sbin/${cmd}`, args, { timeout: 30_000 })
  })

/** Allocated bytes under `dir`, not following links (the fallback when /out has no filesystem of its own). */
async function allocated(dir: string): Promise<number> {
  let total = 0
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = join(dir, e.name)
    const s = await lstat(p).catch(() => undefined)
    if (!s) continue
    total += s.blocks * 512
    if (e.isDirectory()) total += await allocated(p)
  }
  return total
}

const fsUsed = async (path: string) => {
  const s = await statfs(path)
  return (s.blocks - s.bfree) * s.bsize
}

async function isMountpoint(path: string): Promise<boolean> {
  const [self, parent] = await Promise.all([
    stat(path).catch(() => undefined),
    stat(dirname(path)).catch(() => undefined),
  ])
  return self !== undefined && parent !== undefined && self.dev !== parent.dev
}

/** Unmounts a job dir's /out if it is mounted (a crash can leave it so); lazily when it is busy. */
export async function unmountOut(jobDir: string): Promise<void> {
  const out = join(jobDir, 'out')
  if (!(await isMountpoint(out))) return
  await sh('umount', [out]).catch(() => sh('umount', ['-l', out]))
}

/** After a reboot the mount is gone but the image holds the outputs: mount it again, read-only. */
export async function remountOut(outDir: string): Promise<void> {
  const image = join(dirname(outDir), IMAGE)
  if (existsSync(image) && !(await isMountpoint(outDir)))
    await sh('mount', ['-o', 'loop,ro,nosuid,nodev', image, outDir])
}

async function mountImage(init: OutDirInit, path: string, uid: number, gid: number): Promise<void> {
  const image = join(init.jobDir, IMAGE)
  // Sparse: only what the job writes takes disk. Room for maxBytes, the margin and ext4's own
  // reserve for a write in flight (it refuses a 1 MiB write with less than that free), with
  // 1 KiB blocks and an inode per KiB, so many small files fit as they would in the tar.
  const size = Math.ceil((init.maxBytes * 1.25 + 4 * MiB) / 1024) * 1024
  await writeFile(image, '')
  await truncate(image, size)
  await sh('mkfs.ext4', [
    '-q',
    '-F',
    '-b',
    '1024',
    '-i',
    '1024',
    '-I',
    '128',
    '-m',
    '0',
    '-O',
    '^has_journal,^resize_inode',
    '-E',
    `lazy_itable_init=1,root_owner=${uid}:${gid}`,
    image,
  ])
  // noinit_itable: the kernel would otherwise zero the inode tables, filling the sparse image.
  await sh('mount', ['-o', 'loop,nosuid,nodev,noinit_itable', image, path])
  await rmdir(join(path, 'lost+found')).catch(() => {})
}

export async function createOutDir(init: OutDirInit, onFallback: (reason: string) => void): Promise<OutDir> {
  const path = join(init.jobDir, 'out')
  // It may be there already: a container's bind source must exist before it is created.
  await mkdir(path, { mode: 0o700, recursive: true })
  let capped = false
  if (init.ownFs) {
    try {
      await mountImage(
        init,
        path,
        init.owner?.uid ?? process.getuid?.() ?? 0,
        init.owner?.gid ?? process.getgid?.() ?? 0,
      )
      capped = true
    } catch (e) {
      await unmountOut(init.jobDir).catch(() => {})
      await rm(join(init.jobDir, IMAGE), { force: true })
      onFallback((e as Error).message.split('\n')[0] ?? String(e))
    }
  }
  if (!capped && init.owner) await chown(path, init.owner.uid, init.owner.gid)
  // Mode last: mkdir's mode is cut by the umask, and a fresh filesystem's root is 0755.
  await chmod(path, 0o700)
  const base = capped ? await fsUsed(path) : 0
  return {
    path,
    capped,
    used: async () => (capped ? Math.max(0, (await fsUsed(path)) - base) : allocated(path)),
    async release() {
      if (!capped) return
      await unmountOut(init.jobDir)
      await rm(join(init.jobDir, IMAGE), { force: true })
    },
  }
}

/**
 * Calls `onOver` once when the job holds more than maxBytes (plus the margin) in /out; polls,
 * gently when it has to walk the tree. Returns the function that stops the watch.
 */
export function watchOutDir(out: OutDir, maxBytes: number, onOver: (used: number) => void): () => void {
  let stopped = false
  let timer: NodeJS.Timeout | undefined
  const poll = async (): Promise<void> => {
    const t0 = Date.now()
    const used = await out.used().catch(() => 0)
    if (stopped) return
    if (used > maxBytes + OUTPUT_MARGIN_BYTES) {
      stopped = true
      onOver(used)
      return
    }
    timer = setTimeout(() => void poll(), Math.max(100, 4 * (Date.now() - t0)))
  }
  timer = setTimeout(() => void poll(), 100)
  return () => {
    stopped = true
    clearTimeout(timer)
  }
}
