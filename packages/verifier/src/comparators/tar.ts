import { extract as tarExtract } from 'tar-stream'
import { unsafeEntryReason } from '@kiln/artifacts'
import { KilnError } from '@kiln/protocol'

/**
 * Reads an output archive (as packCanonicalTar makes it) into memory: path → content of
 * each regular file. Outputs are already bounded by the job's outputs.maxBytes, and
 * comparing needs both runs' bytes side by side, so nothing touches the disk.
 * Refuses links, devices, unsafe names and duplicate paths: a canonical tar has none, and
 * a duplicate could make two readers see different content under one name.
 */
export async function readTarFiles(tar: Uint8Array): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>()
  const extract = tarExtract()
  const done = (async () => {
    for await (const entry of extract) {
      const name = entry.header.name
      const reason = unsafeEntryReason(name)
      if (reason !== undefined) throw new KilnError('PAYLOAD_INVALID', `output archive entry '${name}' ${reason}`)
      const path = name
        .split('/')
        .filter((s) => s !== '' && s !== '.')
        .join('/')
      const type = entry.header.type ?? 'file'
      if (type === 'directory') {
        entry.resume()
        continue
      }
      if ((type !== 'file' && type !== 'contiguous-file') || path === '') {
        throw new KilnError(
          'PAYLOAD_INVALID',
          `output archive entry '${name}' is a ${type}; only regular files and directories are allowed`,
        )
      }
      if (files.has(path)) throw new KilnError('PAYLOAD_INVALID', `output archive holds '${path}' twice`)
      const chunks: Buffer[] = []
      for await (const chunk of entry as AsyncIterable<Buffer>) chunks.push(chunk)
      files.set(path, Buffer.concat(chunks))
    }
    return files
  })()
  extract.end(Buffer.from(tar.buffer, tar.byteOffset, tar.byteLength))
  try {
    return await done
  } catch (cause) {
    if (cause instanceof KilnError) throw cause
    throw new KilnError(
      'PAYLOAD_INVALID',
      `output archive is not a readable tar: ${(cause as Error).message}`,
      {},
      { cause },
    )
  }
}
