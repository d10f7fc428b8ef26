import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createHTTPHandler } from '@trpc/server/adapters/standalone'
import { isKilnError } from '@kiln/protocol'
import { appRouter, type ApiContext } from './api/index.ts'
import type { ArtifactStore } from './coordinator/index.ts'

export interface HttpInit {
  api: ApiContext
  artifacts: ArtifactStore
  /** Handles everything that is not the API or an artifact (the Next.js app), when present. */
  web?: (req: IncomingMessage, res: ServerResponse) => Promise<void> | void
}

/** One port: `/trpc/*` the API, `/artifacts/<sha256>` outputs, the rest the web app. */
export function createHttpServer(init: HttpInit): Server {
  const trpc = createHTTPHandler({
    router: appRouter,
    basePath: '/trpc/',
    maxBodySize: 256 * 1024,
    createContext: () => init.api,
  })
  return createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost')
    if (url.pathname.startsWith('/trpc/')) return void trpc(req, res)
    if (url.pathname === '/healthz') return json(res, 200, { ok: true })
    const m = /^\/artifacts\/([0-9a-f]{64})$/.exec(url.pathname)
    if (m?.[1]) return serveArtifact(init.artifacts, m[1], res)
    if (init.web) return void init.web(req, res)
    json(res, 404, { error: 'not found', hint: 'the web app is not built; run npm run build -w @kiln/marketplace' })
  })
}

function serveArtifact(store: ArtifactStore, digest: string, res: ServerResponse): void {
  try {
    const size = store.size(digest)
    res.writeHead(200, { 'content-type': 'application/x-tar', 'content-length': size, 'x-kiln-digest': digest, 'cache-control': 'public, max-age=31536000, immutable' })
    store.open(digest).pipe(res)
  } catch (e) {
    json(res, 404, isKilnError(e) ? e.toJSON() : { error: 'not found' })
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(JSON.stringify(body))
}
