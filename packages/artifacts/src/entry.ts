import { createHash } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { rm } from 'node:fs/promises'
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { extract as tarExtract } from 'tar-stream'

export interface EntryFile {
  sha256: string
  size: number
}

/**
 * Copies one regular file of a tar stream (an output as packCanonicalTar made it) to `dest`,
 * hashing it on the way, without holding the archive or the file in memory. `name` is the
 * path inside the archive (no leading slash). Undefined when the archive has no such file;
 * `dest` is then not left behind.
 */
export async function tarEntryToFile(source: Readable, name: string, dest: string): Promise<EntryFile | undefined> {
  const want = name.replace(/^\/+/, '')
  const extract = tarExtract()
  source.pipe(extract)
  let found: EntryFile | undefined
  try {
    for await (const entry of extract) {
      const type = entry.header.type ?? 'file'
      if (found || entry.header.name !== want || (type !== 'file' && type !== 'contiguous-file')) {
        entry.resume()
        continue
      }
      const hash = createHash('sha256')
      let size = 0
      await pipeline(
        entry,
        async function* (chunks: AsyncIterable<unknown>) {
          for await (const chunk of chunks as AsyncIterable<Buffer>) {
            hash.update(chunk)
            size += chunk.length
            yield chunk
          }
        },
        createWriteStream(dest, { mode: 0o600 }),
      )
      found = { sha256: hash.digest('hex'), size }
    }
  } catch (err) {
    await rm(dest, { force: true })
    throw err
  } finally {
    source.unpipe(extract)
    source.destroy()
  }
  return found
}
