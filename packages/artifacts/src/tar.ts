import { constants, createReadStream, createWriteStream } from 'node:fs'
import { pipeline } from 'node:stream/promises'
import { lstat, mkdir, open, readdir, readFile, realpath } from 'node:fs/promises'
import { isAbsolute, join } from 'node:path'
import { pack as tarPack, extract as tarExtract, type Header } from 'tar-stream'
import { KilnError, sha256Hex } from '@kiln/protocol'

/**
 * Outputs travel as a canonical tar: the same files always give the same bytes, so the
 * output digest in a receipt names the content, and two honest providers agree on it.
 */

export interface PackedOutput {
  tar: Buffer
  /** sha256 hex of `tar`. */
  digest: string
  /** Length of `tar` in bytes. */
  bytes: number
  /** Regular files in the archive (directories not counted). */
  files: number
}

export interface PackOptions {
  /** Refuse (OUTPUT_TOO_LARGE) when the archive would be larger than this many bytes. */
  maxBytes?: number
}

interface WalkEntry {
  /** Relative path with '/' separators. */
  path: string
  type: 'file' | 'directory'
  size: number
}

/** Everything under `dir` that is a regular file or a directory; symlinks, devices, fifos
 * and sockets are left out (a symlink could point at the provider's own files). */
async function walk(dir: string): Promise<WalkEntry[]> {
  const out: WalkEntry[] = []
  const visit = async (abs: string, rel: string): Promise<void> => {
    for (const name of await readdir(abs)) {
      const childAbs = join(abs, name)
      const childRel = rel === '' ? name : `${rel}/${name}`
      const st = await lstat(childAbs)
      if (st.isDirectory()) {
        out.push({ path: childRel, type: 'directory', size: 0 })
        await visit(childAbs, childRel)
      } else if (st.isFile()) {
        out.push({ path: childRel, type: 'file', size: st.size })
      }
    }
  }
  await visit(dir, '')
  // Byte order of the UTF-8 path, so the order does not depend on locale or readdir order.
  // A parent always sorts before its children because it is a prefix of them.
  return out.sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)))
}

function tooLarge(what: string, bytes: number, maxBytes: number): KilnError {
  return new KilnError(
    'OUTPUT_TOO_LARGE',
    `${what} is ${bytes} bytes, over the job's limit of ${maxBytes} bytes (outputs.maxBytes)`,
    { bytes, maxBytes },
  )
}

/** An entry's tar header: only the path, type and size vary; every other field is fixed. */
function canonicalHeader(e: WalkEntry): Partial<Header> & { name: string } {
  return {
    name: e.path,
    type: e.type,
    mode: e.type === 'file' ? 0o644 : 0o755,
    mtime: new Date(0),
    uid: 0,
    gid: 0,
    uname: '',
    gname: '',
  }
}

/**
 * The same canonical tar as packCanonicalTar, streamed to the file `dest` one file at a time
 * instead of built in memory, so a folder of big files (an input) packs in bounded memory.
 */
export async function packCanonicalTarTo(dir: string, dest: string): Promise<void> {
  const entries = await walk(dir)
  const pack = tarPack()
  const written = pipeline(pack, createWriteStream(dest))
  for (const e of entries) {
    const header = canonicalHeader(e)
    if (e.type === 'directory') {
      pack.entry(header)
      continue
    }
    await new Promise<void>((resolve, reject) => {
      const entry = pack.entry({ ...header, size: e.size }, (err) => (err ? reject(err) : resolve()))
      createReadStream(join(dir, e.path)).on('error', reject).pipe(entry)
    })
  }
  pack.finalize()
  await written
}

export async function packCanonicalTar(dir: string, opts: PackOptions = {}): Promise<PackedOutput> {
  const entries = await walk(dir)
  const maxBytes = opts.maxBytes
  const contentBytes = entries.reduce((n, e) => n + e.size, 0)
  // Refuse before reading anything when the file contents alone are over the limit.
  if (maxBytes !== undefined && contentBytes > maxBytes) throw tooLarge('the content of /out', contentBytes, maxBytes)

  const pack = tarPack()
  const chunks: Buffer[] = []
  pack.on('data', (c: unknown) => {
    chunks.push(c as Buffer)
  })
  const ended = new Promise<void>((resolve, reject) => {
    pack.on('end', resolve)
    pack.on('error', reject)
  })
  let files = 0
  for (const e of entries) {
    const header = canonicalHeader(e)
    if (e.type === 'directory') {
      pack.entry(header)
    } else {
      const content = await readFile(join(dir, e.path))
      pack.entry({ ...header, size: content.length }, content)
      files++
    }
  }
  pack.finalize()
  await ended
  const tar = Buffer.concat(chunks)
  if (maxBytes !== undefined && tar.length > maxBytes) throw tooLarge('the output archive', tar.length, maxBytes)
  return { tar, digest: sha256Hex(tar), bytes: tar.length, files }
}

/** Why an archive entry name is unsafe to extract, or undefined when it is fine. */
export function unsafeEntryReason(name: string): string | undefined {
  if (name === '' || name === '.' || name === './') return undefined
  if (name.includes('\0')) return 'contains a NUL byte'
  // Backslashes and drive letters are path syntax on Windows, where the CLI also runs.
  if (name.includes('\\')) return 'contains a backslash'
  if (name.startsWith('/') || isAbsolute(name) || /^[A-Za-z]:/.test(name)) return 'is an absolute path'
  if (name.split('/').includes('..')) return "contains a '..' segment"
  return undefined
}

export interface UnpackResult {
  files: number
  bytes: number
}

/**
 * Extracts a tar (as packCanonicalTar makes it) into `dir`. Refuses absolute paths, `..`,
 * links and devices, and never writes through a symlink already in `dir`, so a hostile
 * archive cannot write outside it.
 */
export async function unpackTar(tar: Buffer, dir: string): Promise<UnpackResult> {
  await mkdir(dir, { recursive: true })
  const root = await realpath(dir)
  const extract = tarExtract()
  const done = (async () => {
    let files = 0
    let bytes = 0
    for await (const entry of extract) {
      const name = entry.header.name
      const reason = unsafeEntryReason(name)
      if (reason !== undefined)
        throw new KilnError('PAYLOAD_INVALID', `refusing to extract archive entry '${name}': it ${reason}`)
      const rel = name
        .split('/')
        .filter((s) => s !== '' && s !== '.')
        .join('/')
      const type = entry.header.type ?? 'file'
      if (type === 'directory') {
        if (rel !== '') await safeDirs(root, rel, true)
        entry.resume()
        continue
      }
      if ((type !== 'file' && type !== 'contiguous-file') || rel === '') {
        throw new KilnError(
          'PAYLOAD_INVALID',
          `refusing to extract archive entry '${name}': only regular files and directories are allowed, not ${type}`,
        )
      }
      const target = await safeDirs(root, rel, false)
      // O_NOFOLLOW: a symlink planted at the target path is an error, not a redirect.
      const fh = await open(
        target,
        constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW,
        0o644,
      )
      try {
        for await (const chunk of entry as AsyncIterable<Buffer>) {
          await fh.write(chunk)
          bytes += chunk.length
        }
      } finally {
        await fh.close()
      }
      files++
    }
    return { files, bytes }
  })()
  extract.end(tar)
  return done
}

/**
 * Makes the directories of `rel` under `root` one at a time, refusing any that already
 * exists as a symlink or a non-directory: `mkdir -p` would follow a planted symlink and
 * create directories outside `root`. Returns the absolute path of `rel`.
 */
async function safeDirs(root: string, rel: string, includeLast: boolean): Promise<string> {
  const segments = rel.split('/')
  const dirs = includeLast ? segments : segments.slice(0, -1)
  let current = root
  for (const segment of dirs) {
    current = join(current, segment)
    const st = await lstat(current).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return undefined
      throw e
    })
    if (st === undefined) await mkdir(current)
    else if (!st.isDirectory())
      throw new KilnError('PAYLOAD_INVALID', `refusing to extract '${rel}': ${current} exists and is not a directory`)
  }
  return join(root, ...segments)
}
