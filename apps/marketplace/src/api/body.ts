import type { IncomingMessage, ServerResponse } from 'node:http'
import { TRPC_ERROR_CODES_BY_KEY } from '@trpc/server/rpc'
import { jsonTextDepth, KilnError, MAX_JSON_DEPTH } from '@kiln/protocol'
import { httpCode, httpStatusOf } from '@kiln/api'

/** The largest API request body: an envelope is at most 64 KiB, with room around it. */
export const MAX_BODY_BYTES = 256 * 1024

function tooDeep(where: string): KilnError {
  return new KilnError(
    'PAYLOAD_INVALID',
    `the request ${where} nests more than ${MAX_JSON_DEPTH} levels deep; no Kiln request does`,
    {
      issues: [
        {
          path: '(root)',
          message: `nested more than ${MAX_JSON_DEPTH} levels deep`,
          expected: `at most ${MAX_JSON_DEPTH} levels of objects and arrays`,
        },
      ],
    },
  )
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const collect = (chunk: Buffer) => {
      size += chunk.byteLength
      if (size <= MAX_BODY_BYTES) return void chunks.push(chunk)
      // Drained, not destroyed: the refusal still has to reach the caller.
      req.off('data', collect).resume()
      reject(
        new KilnError('ENVELOPE_TOO_LARGE', `the request body is over ${MAX_BODY_BYTES} bytes`, {
          maxBytes: MAX_BODY_BYTES,
        }),
      )
    }
    req.on('data', collect)
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    req.on('error', reject)
  })
}

/**
 * Reads an API request's body (and a query's `input`) and refuses it before tRPC parses it
 * when it is too large or nested too deep: nothing recursive downstream (zod, canonical
 * JSON, the database driver) may meet a 100,000-deep value and overflow the stack. The body
 * read is handed on as `req.body`, which tRPC's adapter takes instead of reading the stream.
 */
export async function screenApiRequest(req: IncomingMessage, url: URL): Promise<void> {
  const input = url.searchParams.get('input')
  if (input !== null && jsonTextDepth(input, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) throw tooDeep('input')
  if (req.method !== 'POST') return
  const body = await readBody(req)
  if (jsonTextDepth(body, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) throw tooDeep('body')
  ;(req as IncomingMessage & { body?: string }).body = body
}

/** A refusal in the shape of a tRPC error answer, so the SDK rebuilds the Kiln error from it. */
export function sendApiError(res: ServerResponse, url: URL, err: KilnError): void {
  const code = httpCode(err)
  const status = httpStatusOf(err)
  const body = {
    error: {
      message: err.message,
      code: TRPC_ERROR_CODES_BY_KEY[code],
      data: { code, httpStatus: status, path: url.pathname.slice('/trpc/'.length), kiln: err.toJSON() },
    },
  }
  res.writeHead(status, { 'content-type': 'application/json', connection: 'close' })
  res.end(JSON.stringify(body))
}
