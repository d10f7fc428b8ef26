import type Dockerode from 'dockerode'
import { KilnError, maskSecrets, type RegistryAuth } from '@kiln/protocol'
import { dockerMessage, isConnectionError, withTimeout } from './errors.ts'
import type { EnsureImageOptions } from './types.ts'

const DOCKER_HUB = 'docker.io'
const HUB_ALIASES = new Set([DOCKER_HUB, 'index.docker.io', 'registry-1.docker.io'])

/** The registry an image reference names: its first segment when that is a host, else Docker Hub. */
export function registryOf(ref: string): string {
  const slash = ref.indexOf('/')
  const first = slash < 0 ? '' : ref.slice(0, slash)
  const host =
    first !== '' && (first.includes('.') || first.includes(':') || first === 'localhost') ? first : DOCKER_HUB
  return HUB_ALIASES.has(host.toLowerCase()) ? DOCKER_HUB : host.toLowerCase()
}

/** What the engine says when a registry refuses (or wants) credentials. */
const AUTH_REFUSED =
  /unauthori[sz]ed|authentication required|no basic auth credentials|access denied|denied:|incorrect username or password|\b401\b|\b403\b/i
/** What it says when the repository or tag is not there (Docker Hub says both for a private repo). */
const NOT_THERE = /not found|does not exist|manifest unknown|name unknown/i

interface PullEvent {
  id?: string
  status?: string
  error?: string
  progressDetail?: { current?: number; total?: number }
}

/**
 * Sums the pull stream's per-layer progress: `Downloading` events carry a layer's bytes so far
 * and its size; a layer that completes (or already exists) counts as all of its known size.
 */
export class PullProgress {
  private readonly layers = new Map<string, { current: number; total: number | null }>()
  private last = ''

  constructor(private readonly onProgress?: (done: number, total: number | null) => void) {}

  event(ev: PullEvent): void {
    if (!ev.id || !ev.status) return
    const layer = this.layers.get(ev.id) ?? { current: 0, total: null }
    const detail = ev.progressDetail
    if (ev.status === 'Downloading' && detail) {
      if (typeof detail.total === 'number' && detail.total > 0) layer.total = detail.total
      if (typeof detail.current === 'number') layer.current = detail.current
    } else if (/^(Download complete|Pull complete|Already exists)$/.test(ev.status)) {
      if (layer.total !== null) layer.current = layer.total
    } else if (!/^(Pulling fs layer|Waiting|Verifying Checksum|Extracting)$/.test(ev.status)) {
      return // "Pulling from …", "Digest: …", "Status: …" are about the image, not a layer
    }
    this.layers.set(ev.id, layer)
    this.report()
  }

  private report(): void {
    let done = 0
    let total: number | null = null
    for (const l of this.layers.values()) {
      done += l.current
      if (l.total !== null) total = (total ?? 0) + l.total
    }
    const key = `${done}/${total}`
    if (key === this.last || !this.onProgress) return
    this.last = key
    this.onProgress(done, total)
  }
}

/**
 * docker pull through the engine. Credentials travel in this request's X-Registry-Auth header
 * only (docker-modem builds it per call and keeps nothing on the client), and only to the
 * registry they are for: the engine sends them to whatever registry the reference names.
 * Throws REGISTRY_AUTH_FAILED when the registry refuses; other failures as they came, with the
 * password masked out of their message should a registry ever echo it.
 */
export async function pullImage(
  docker: Dockerode,
  ref: string,
  opts: EnsureImageOptions,
  timeoutMs: number,
): Promise<void> {
  const { auth } = opts
  const registry = registryOf(ref)
  if (auth && registryOf(`${auth.server}/x`) !== registry)
    throw new KilnError(
      'REGISTRY_AUTH_FAILED',
      `the registry credentials are for ${auth.server}, but image ${ref} is on ${registry}: they were not sent`,
      { image: ref, registry },
    )
  const progress = new PullProgress(opts.onProgress)
  try {
    const stream = await docker.pull(
      ref,
      auth ? { authconfig: { username: auth.username, password: auth.password, serveraddress: auth.server } } : {},
    )
    const events = await withTimeout(
      new Promise<PullEvent[]>((resolve, reject) => {
        docker.modem.followProgress(
          stream,
          (err: Error | null, output: PullEvent[]) => (err ? reject(err) : resolve(output)),
          (ev: PullEvent) => progress.event(ev),
        )
      }),
      timeoutMs,
      `the pull took longer than ${timeoutMs} ms`,
    )
    // The engine reports most pull failures inside the progress stream, not as HTTP errors.
    const failed = events.find((ev) => typeof ev.error === 'string')
    if (failed) throw new Error(String(failed.error))
  } catch (e) {
    throw refusal(e, ref, registry, auth) ?? scrub(e, auth)
  }
}

function refusal(e: unknown, ref: string, registry: string, auth: RegistryAuth | undefined): KilnError | undefined {
  if (isConnectionError(e)) return undefined
  const status = (e as { statusCode?: number } | null)?.statusCode
  const message = hide(dockerMessage(e), auth)
  const refused = status === 401 || status === 403 || AUTH_REFUSED.test(message)
  // Without credentials, "denied … does not exist" is a missing image (IMAGE_NOT_FOUND upstream).
  if (!refused || (!auth && NOT_THERE.test(message))) return undefined
  const who = auth ? `refused the credentials of ${auth.username}` : 'wants credentials, and the job gave none'
  return new KilnError('REGISTRY_AUTH_FAILED', `the registry ${registry} ${who} for image ${ref}: ${message}`, {
    image: ref,
    registry,
  })
}

function hide(text: string, auth: RegistryAuth | undefined): string {
  return auth ? maskSecrets(text, [auth.password]) : text
}

/** The error with the password masked out of its message (the cause chain is dropped with it). */
function scrub(e: unknown, auth: RegistryAuth | undefined): unknown {
  if (!auth || isConnectionError(e)) return e
  const err = new Error(hide(dockerMessage(e), auth))
  const status = (e as { statusCode?: number } | null)?.statusCode
  return status === undefined ? err : Object.assign(err, { statusCode: status })
}
