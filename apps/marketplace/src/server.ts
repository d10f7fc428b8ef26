import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createHTTPHandler } from '@trpc/server/adapters/standalone'
import { isKilnError, KilnError, readerOf, requireReader, type Address } from '@kiln/protocol'
import { appRouter, httpStatusOf } from '@kiln/api'
import { marketplaceOf, type ApiContext } from './api/market.ts'
import { MAX_BODY_BYTES, screenApiRequest, sendApiError } from './api/body.ts'
import type { ArtifactStore } from './coordinator/index.ts'
import { blobRoutes } from './blobs/http.ts'
import type { BlobStore } from './blobs/store.ts'

export interface HttpInit {
  api: ApiContext
  artifacts: ArtifactStore
  /** Uploaded inputs (`/blobs/<sha256>`), when this marketplace takes uploads. */
  blobs?: BlobStore
  /** Handles everything that is not the API or an artifact (the Next.js app), when present. */
  web?: (req: IncomingMessage, res: ServerResponse) => Promise<void> | void
}

/**
 * One port: `/trpc/*` the API, `/artifacts/<sha256>` outputs (their owner's only), `/blobs/<sha256>`
 * uploaded inputs (blobs/http.ts), the rest the web app.
 */
export function createHttpServer(init: HttpInit): Server {
  const audience = init.api.info.arbiter as Address
  const market = marketplaceOf(init.api)
  const trpc = createHTTPHandler({
    router: appRouter,
    basePath: '/trpc/',
    maxBodySize: MAX_BODY_BYTES,
    createContext: ({ req }) => ({ market, reader: () => readerOf(req.headers.authorization, audience) }),
    // What the caller was told is sanitised (see the error formatter); the details stay here.
    onError: ({ error, path }) => {
      if (error.code === 'INTERNAL_SERVER_ERROR' && !isKilnError(error.cause))
        init.api.coordinator.log.error({ path, err: String(error.cause ?? error) }, 'API request failed')
    },
  })
  const blobs = init.blobs ? blobRoutes({ store: init.blobs, audience, log: init.api.coordinator.log }) : undefined
  return createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost')
    if (url.pathname.startsWith('/trpc/')) {
      return void screenApiRequest(req, url).then(
        () => trpc(req, res),
        (e: unknown) => {
          if (isKilnError(e)) return sendApiError(res, url, e)
          init.api.coordinator.log.warn({ err: String(e) }, 'could not read an API request')
          res.destroy()
        },
      )
    }
    if (url.pathname === '/healthz') return json(res, 200, { ok: true })
    const m = /^\/artifacts\/([0-9a-f]{64})$/.exec(url.pathname)
    if (m?.[1]) return void serveArtifact(init, audience, m[1], req, res)
    if (blobs?.(req, res, url)) return
    if (init.web) return void init.web(req, res)
    json(res, 404, { error: 'not found', hint: 'the web app is not built; run npm run build -w @kiln/marketplace' })
  })
}

/** An output, to its owner only: the request carries the owner's read token. */
async function serveArtifact(
  init: HttpInit,
  audience: Address,
  digest: string,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  try {
    const reader = requireReader(readerOf(req.headers.authorization, audience), 'outputs', { digest })
    // The same answer for "not yours" and "no such output": a stranger learns nothing from it.
    if (!(await init.api.coordinator.store.ownsOutput(reader, digest)))
      throw new KilnError('ARTIFACT_NOT_FOUND', `no output ${digest} of yours here`, { digest })
    const size = init.artifacts.size(digest)
    res.writeHead(200, {
      'content-type': 'application/x-tar',
      'content-length': size,
      'x-kiln-digest': digest,
      'cache-control': 'private, no-store',
    })
    init.artifacts.open(digest).pipe(res)
  } catch (e) {
    const err = isKilnError(e)
      ? e
      : new KilnError('INTERNAL_ERROR', 'the marketplace failed to answer; it logged the details')
    if (!isKilnError(e)) init.api.coordinator.log.error({ digest, err: String(e) }, 'artifact request failed')
    json(res, httpStatusOf(err), err.toJSON())
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(JSON.stringify(body))
}
