/** What fair ordering needs of a queued job. */
export interface Queued {
  id: string
  client: string
  priority: number
  createdAt: number
}

/**
 * The order in which queued jobs get the next free provider: higher priority first; within a
 * priority, clients take turns (round-robin, oldest job of each client first), so a flood of
 * jobs from one client does not starve the others.
 */
export function fairOrder<J extends Queued>(jobs: readonly J[]): J[] {
  const byPriority = new Map<number, Map<string, J[]>>()
  for (const j of [...jobs].sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1))) {
    let clients = byPriority.get(j.priority)
    if (!clients) byPriority.set(j.priority, (clients = new Map()))
    let list = clients.get(j.client)
    if (!list) clients.set(j.client, (list = []))
    list.push(j)
  }
  const out: J[] = []
  for (const p of [...byPriority.keys()].sort((a, b) => b - a)) {
    // Clients in order of their oldest waiting job, then one job each per round.
    const queues = [...byPriority.get(p)!.values()]
    for (let round = 0; out.length < jobs.length; round++) {
      let any = false
      for (const q of queues) {
        const j = q[round]
        if (j) {
          out.push(j)
          any = true
        }
      }
      if (!any) break
    }
  }
  return out
}
