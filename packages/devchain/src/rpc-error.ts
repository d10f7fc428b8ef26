/** A JSON-RPC error as a node returns it: a code, a message and optional data. */
export class RpcError extends Error {
  override readonly name = 'RpcError'
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message)
  }
}

export const invalidParams = (message: string): RpcError => new RpcError(-32602, `Invalid params: ${message}`)
