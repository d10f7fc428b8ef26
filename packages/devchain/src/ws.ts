import type { IncomingMessage, Server } from 'node:http'
import type { Duplex } from 'node:stream'
import { isAddress } from '@kiln/protocol'
import { WebSocketServer, type RawData, type WebSocket } from 'ws'
import { encodeAccount, mintDecimalsOf, parseEncoding, type Encoding } from './accounts.ts'
import { MAX_BODY_BYTES } from './http.ts'
import type { CommitEvent, Ledger } from './ledger.ts'
import { RpcError } from './rpc-error.ts'

const MAX_SUBS_PER_SOCKET = 10_000

interface Sub {
  ws: WebSocket
  kind: 'signature' | 'account'
  key: string
  encoding: Encoding
}

/**
 * The PubSub side of a node: `signatureSubscribe` (web3.js's confirmTransaction waits on it)
 * and `accountSubscribe`. Signature subscriptions are one-shot, as on a node: removed once
 * notified, which web3.js expects (it does not unsubscribe them).
 */
export class PubSub {
  readonly #wss = new WebSocketServer({ noServer: true, maxPayload: MAX_BODY_BYTES })
  readonly #ledger: Ledger
  readonly #subs = new Map<number, Sub>()
  readonly #byKey = new Map<string, Set<number>>()
  #nextId = 1
  readonly #offCommit: () => void

  constructor(ledger: Ledger) {
    this.#ledger = ledger
    this.#offCommit = ledger.onCommit((e) => this.#onCommit(e))
    this.#wss.on('connection', (ws: WebSocket) => {
      ws.on('message', (data: RawData) => this.#onMessage(ws, data))
      ws.on('close', () => this.#dropSocket(ws))
      ws.on('error', () => ws.terminate())
    })
  }

  attach(server: Server): void {
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.#wss.handleUpgrade(req, socket, head, (ws) => this.#wss.emit('connection', ws, req))
    })
  }

  close(): Promise<void> {
    this.#offCommit()
    for (const ws of this.#wss.clients) ws.terminate()
    return new Promise((resolve) => this.#wss.close(() => resolve()))
  }

  #onMessage(ws: WebSocket, data: RawData): void {
    let msg: { id?: unknown; method?: unknown; params?: unknown }
    try {
      msg = JSON.parse(data.toString()) as typeof msg
    } catch {
      return ws.send(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } }))
    }
    // Notifications (no id), such as web3.js's heartbeat `ping`, need no answer.
    if (typeof msg !== 'object' || msg === null || (typeof msg.id !== 'number' && typeof msg.id !== 'string')) return
    const id = msg.id
    const params = Array.isArray(msg.params) ? (msg.params as unknown[]) : []
    try {
      const result = this.#call(ws, String(msg.method), params)
      ws.send(JSON.stringify({ jsonrpc: '2.0', id, result }))
      // A signature already processed is notified right away, after the id is known.
      if (msg.method === 'signatureSubscribe') this.#notifySignature(result as number)
    } catch (e) {
      const err = e instanceof RpcError ? e : new RpcError(-32603, `Internal error: ${(e as Error).message}`)
      ws.send(JSON.stringify({ jsonrpc: '2.0', id, error: { code: err.code, message: err.message } }))
    }
  }

  #call(ws: WebSocket, method: string, params: unknown[]): unknown {
    const cfg = (typeof params[1] === 'object' && params[1] !== null ? params[1] : {}) as { encoding?: unknown }
    switch (method) {
      case 'signatureSubscribe':
        if (typeof params[0] !== 'string' || params[0].length < 64 || params[0].length > 90)
          throw new RpcError(-32602, 'Invalid params: param 0 must be a signature')
        return this.#add({ ws, kind: 'signature', key: params[0], encoding: 'base64' })
      case 'accountSubscribe':
        if (!isAddress(params[0])) throw new RpcError(-32602, 'Invalid params: param 0 must be a base58 public key')
        return this.#add({ ws, kind: 'account', key: params[0], encoding: parseEncoding(cfg.encoding, 'base64') })
      case 'signatureUnsubscribe':
      case 'accountUnsubscribe':
        // True even for an id already gone: web3.js retries failed unsubscribes.
        if (typeof params[0] === 'number' && this.#subs.get(params[0])?.ws === ws) this.#remove(params[0])
        return true
      default:
        throw new RpcError(-32601, 'Method not found')
    }
  }

  #add(sub: Sub): number {
    let count = 0
    for (const s of this.#subs.values()) if (s.ws === sub.ws) count++
    if (count >= MAX_SUBS_PER_SOCKET)
      throw new RpcError(-32602, `Invalid params: over ${MAX_SUBS_PER_SOCKET} subscriptions on one socket`)
    const id = this.#nextId++
    this.#subs.set(id, sub)
    const k = `${sub.kind}:${sub.key}`
    const set = this.#byKey.get(k) ?? new Set()
    set.add(id)
    this.#byKey.set(k, set)
    return id
  }

  #remove(id: number): void {
    const sub = this.#subs.get(id)
    if (!sub) return
    this.#subs.delete(id)
    const k = `${sub.kind}:${sub.key}`
    const set = this.#byKey.get(k)
    set?.delete(id)
    if (set && set.size === 0) this.#byKey.delete(k)
  }

  #dropSocket(ws: WebSocket): void {
    for (const [id, s] of this.#subs) if (s.ws === ws) this.#remove(id)
  }

  #notifySignature(id: number): void {
    const sub = this.#subs.get(id)
    const status = sub && this.#ledger.status(sub.key)
    if (!sub || !status) return
    this.#push(sub.ws, 'signatureNotification', id, status.slot, { err: status.err })
    this.#remove(id)
  }

  #onCommit(e: CommitEvent): void {
    for (const id of [...(this.#byKey.get(`signature:${e.signature}`) ?? [])]) this.#notifySignature(id)
    for (const key of e.accounts) {
      for (const id of this.#byKey.get(`account:${key}`) ?? []) {
        const sub = this.#subs.get(id)
        if (sub) this.#push(sub.ws, 'accountNotification', id, e.slot, this.#accountValue(key, sub.encoding))
      }
    }
  }

  #accountValue(key: string, encoding: Encoding): unknown {
    const acc = this.#ledger.account(key)
    // A closed account is announced as an empty system account, as a node does.
    if (!acc)
      return {
        lamports: 0,
        owner: '11111111111111111111111111111111',
        data: ['', 'base64'],
        executable: false,
        rentEpoch: 0,
        space: 0,
      }
    return encodeAccount(acc, encoding, undefined, (m) => mintDecimalsOf(this.#ledger.account(m)))
  }

  #push(ws: WebSocket, method: string, subscription: number, slot: number, value: unknown): void {
    if (ws.readyState !== ws.OPEN) return
    ws.send(JSON.stringify({ jsonrpc: '2.0', method, params: { result: { context: { slot }, value }, subscription } }))
  }
}
