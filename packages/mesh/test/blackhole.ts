import { connect, createServer, type Socket } from 'node:net'

export interface Blackhole {
  port: number
  /**
   * From now on nothing passes in either direction and nothing is closed: what a peer whose
   * process hung (SIGSTOP, a deadlock) looks like from the other end. New connections are
   * accepted and left silent too.
   */
  hang(): void
  close(): Promise<void>
}

/** A TCP forwarder on 127.0.0.1 to `targetPort` that can be made to hang. */
export async function startBlackhole(targetPort: number): Promise<Blackhole> {
  let hung = false
  const sockets = new Set<Socket>()
  const track = (s: Socket) => {
    sockets.add(s)
    s.once('close', () => sockets.delete(s))
    s.on('error', () => s.destroy())
    return s
  }
  const server = createServer((client) => {
    track(client)
    if (hung) return client.pause()
    const upstream = track(connect(targetPort, '127.0.0.1'))
    // Not pipe(): a hang must stop the flow without ending either side.
    const forward = (from: Socket, to: Socket) => {
      from.on('data', (chunk) => {
        if (!hung) to.write(chunk)
      })
      from.once('end', () => {
        if (!hung) to.end()
      })
    }
    forward(client, upstream)
    forward(upstream, client)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const addr = server.address()
  return {
    port: typeof addr === 'object' && addr !== null ? addr.port : 0,
    hang() {
      hung = true
      // Stop reading as well: the kernel buffers fill and the sender's writes stall, as they
      // would against a stopped process.
      for (const s of sockets) s.pause()
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  }
}
