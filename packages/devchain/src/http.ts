import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { KilnError } from '@kiln/protocol'
import { dispatch, type RpcContext } from './rpc.ts'
import { RpcError } from './rpc-error.ts'

export const MAX_BODY_BYTES = 1 << 20
const MAX_BATCH = 100

type Id = string | number | null
const reply = (id: Id, result: unknown): object => ({ jsonrpc: '2.0', id, result })
const fail = (id: Id, code: number, message: string, data?: unknown): object => ({
  jsonrpc: '2.0',
  id,
  error: data === undefined ? { code, message } : { code, message, data },
})

function callOne(req: unknown, ctx: RpcContext): object {
  if (typeof req !== 'object' || req === null || Array.isArray(req)) return fail(null, -32600, 'Invalid request')
  const r = req as { jsonrpc?: unknown; method?: unknown; params?: unknown; id?: unknown }
  const id: Id = typeof r.id === 'string' || typeof r.id === 'number' ? r.id : null
  if (r.jsonrpc !== '2.0' || typeof r.method !== 'string') return fail(id, -32600, 'Invalid request')
  try {
    return reply(id, dispatch(r.method, r.params, ctx))
  } catch (e) {
    if (e instanceof RpcError) return fail(id, e.code, e.message, e.data)
    return fail(id, -32603, `Internal error: ${(e as Error).message}`)
  }
}

/** Answers a parsed JSON-RPC body: one call or a batch. */
export function answer(body: unknown, ctx: RpcContext): unknown {
  if (!Array.isArray(body)) return callOne(body, ctx)
  if (body.length === 0 || body.length > MAX_BATCH)
    return fail(null, -32600, `Invalid request: a batch holds 1 to ${MAX_BATCH} calls`)
  return body.map((b) => callOne(b, ctx))
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body)
  res.writeHead(status, {
    'content-type': typeof body === 'string' ? 'text/plain' : 'application/json',
    'content-length': Buffer.byteLength(text),
  })
  res.end(text)
}

/** JSON-RPC over HTTP POST, bodies bounded; GET /health like a node. */
export function requestHandler(ctx: RpcContext): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    if (req.method === 'GET' && req.url === '/health') return send(res, 200, 'ok')
    if (req.method !== 'POST') return send(res, 405, fail(null, -32600, 'JSON-RPC takes POST'))
    if (Number(req.headers['content-length'] ?? 0) > MAX_BODY_BYTES) {
      res.setHeader('connection', 'close')
      return send(res, 413, fail(null, -32600, `request body over ${MAX_BODY_BYTES} bytes`))
    }
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (c: Buffer) => {
      size += c.length
      if (size > MAX_BODY_BYTES) {
        res.setHeader('connection', 'close')
        send(res, 413, fail(null, -32600, `request body over ${MAX_BODY_BYTES} bytes`))
        req.destroy()
      } else chunks.push(c)
    })
    req.on('end', () => {
      if (res.headersSent) return
      let body: unknown
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'))
      } catch {
        return send(res, 200, fail(null, -32700, 'Parse error'))
      }
      send(res, 200, answer(body, ctx))
    })
  }
}

function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error): void => reject(e)
    server.once('error', onError)
    server.listen(port, host, () => {
      server.off('error', onError)
      const a = server.address()
      resolve(typeof a === 'object' && a ? a.port : port)
    })
  })
}

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve()
    server.close(() => resolve())
    // web3.js keeps HTTP connections alive; without this close() would wait for them.
    server.closeAllConnections()
  })
}

/**
 * Listens on `port` and `port + 1` (web3.js derives the WebSocket URL as port + 1). With
 * port 0, tries free ports until a consecutive pair is free. Both servers speak JSON-RPC
 * and accept WebSocket upgrades, so either URL works for either use.
 */
export async function listenPair(
  host: string,
  port: number,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ port: number; servers: [Server, Server] }> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const a = createServer(handler)
    const b = createServer(handler)
    let p: number
    try {
      p = await listen(a, host, port)
      if (p >= 65535) throw Object.assign(new Error('no room for port + 1'), { code: 'EADDRINUSE' })
      await listen(b, host, p + 1)
      return { port: p, servers: [a, b] }
    } catch (e) {
      await closeServer(a)
      await closeServer(b)
      const code = (e as { code?: string }).code
      if (port !== 0 || code !== 'EADDRINUSE') {
        throw new KilnError(
          'CONFIG_INVALID',
          `devchain cannot listen on ${host}:${port} and ${port + 1}: ${(e as Error).message}`,
          { host, port },
          { cause: e },
        )
      }
    }
  }
  throw new KilnError('CONFIG_INVALID', `devchain found no free pair of consecutive ports on ${host}`, { host })
}
