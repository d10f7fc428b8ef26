import { constants, createReadStream } from 'node:fs'
import { mkdir, open } from 'node:fs/promises'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { extract as tarExtract } from 'tar-stream'
import { KilnError } from '@kiln/protocol'
import { unsafeEntryReason } from '@kiln/artifacts'

/**
 * Unpacks a folder input's archive from a file into `dir` (which must not exist yet), one
 * entry at a time: the archive may be far larger than memory (unpackTar in @kiln/artifacts
 * takes a Buffer, which suits outputs, not inputs). The folder starts empty and only regular
 * files and folders are made in it, so no symlink can be there to write through; a name that
 * climbs out (`..`, absolute) or repeats is refused.
 */
export async function unpackArchiveFile(archive: string, dir: string, name: string): Promise<{ files: number }> {
  await mkdir(dir, { mode: 0o755 })
  let files = 0
  const refuse = (entry: string, why: string): KilnError =>
    new KilnError('PAYLOAD_INVALID', `input ${name}: refusing archive entry '${entry}': it ${why}`, {
      input: name,
      entry,
    })
  const ex = tarExtract()
  const consume = (async () => {
    for await (const entry of ex) {
      const raw = entry.header.name
      const reason = unsafeEntryReason(raw)
      if (reason !== undefined) throw refuse(raw, reason)
      const rel = raw.split('/').filter((s) => s !== '' && s !== '.')
      const type = entry.header.type ?? 'file'
      if (type === 'directory') {
        if (rel.length > 0) await mkdir(join(dir, ...rel), { recursive: true, mode: 0o755 })
        entry.resume()
        continue
      }
      if ((type !== 'file' && type !== 'contiguous-file') || rel.length === 0)
        throw refuse(raw, `is a ${type}; only regular files and folders are allowed`)
      await mkdir(join(dir, ...rel.slice(0, -1)), { recursive: true, mode: 0o755 })
      // O_EXCL: a second entry of the same name is refused, not written over.
      const fh = await open(
        join(dir, ...rel),
        constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
        0o644,
      ).catch((e: NodeJS.ErrnoException) => {
        throw e.code === 'EEXIST' ? refuse(raw, 'repeats an earlier entry') : e
      })
      try {
        for await (const chunk of entry as AsyncIterable<Buffer>) await fh.write(chunk)
      } finally {
        await fh.close()
      }
      files++
    }
  })()
  // Whichever fails first ends both: a refused entry destroys the extractor, a bad archive rejects the pipeline.
  const feeding = pipeline(createReadStream(archive), ex)
  try {
    await Promise.all([consume, feeding])
  } catch (e) {
    ex.destroy()
    await Promise.allSettled([consume, feeding])
    if (e instanceof KilnError) throw e
    throw new KilnError('PAYLOAD_INVALID', `input ${name}: its archive does not unpack: ${(e as Error).message}`, {
      input: name,
    })
  }
  return { files }
}
