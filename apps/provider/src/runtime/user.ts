import type Dockerode from 'dockerode'
import { KilnError } from '@kiln/protocol'

export interface Ids {
  uid: number
  gid: number
}

const numeric = (s: string | undefined): number | undefined =>
  s !== undefined && /^\d+$/.test(s) ? Number(s) : undefined

/** The first file of a tar (what the engine's archive API sends for one path). */
function firstFile(tar: Buffer): string {
  const size = parseInt(tar.subarray(124, 136).toString('latin1').replace(/\0.*$/, '').trim() || '0', 8)
  return tar.subarray(512, 512 + size).toString('utf8')
}

async function readPasswd(container: Dockerode.Container): Promise<string> {
  const stream = await container.getArchive({ path: '/etc/passwd' }).catch(() => undefined)
  if (!stream) return ''
  const chunks: Buffer[] = []
  let bytes = 0
  for await (const c of stream as AsyncIterable<Buffer>) {
    chunks.push(c)
    bytes += c.length
    if (bytes > 4 * 1024 * 1024) break
  }
  return firstFile(Buffer.concat(chunks))
}

/**
 * The numeric uid (and gid) a created container will run as, for its /out's owner. `user` is
 * what the container was created with (`uid[:gid]` or `name[:group]`); a name is looked up in
 * the image's own /etc/passwd, as the engine does at start. The gid only matters little: /out
 * is 0700, so the owner alone writes it.
 */
export async function containerIds(container: Dockerode.Container, user: string): Promise<Ids> {
  const [u = '', g] = user.split(':')
  let uid = numeric(u)
  let passwdGid: number | undefined
  if (uid === undefined) {
    const entry = (await readPasswd(container))
      .split('\n')
      .map((l) => l.split(':'))
      .find((f) => f[0] === u)
    uid = numeric(entry?.[2])
    passwdGid = numeric(entry?.[3])
    if (uid === undefined)
      throw new KilnError('CONTAINER_FAILED', `the image runs as user "${u}", which its /etc/passwd does not name`, {
        user,
      })
  }
  return { uid, gid: numeric(g) ?? passwdGid ?? uid }
}
