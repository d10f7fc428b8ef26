import { existsSync } from 'node:fs'
import { loadOrCreateIdentity } from '@kiln/protocol'
import { Exit, openClient, type GlobalOpts, type Io } from '../context.ts'
import { settlementWords } from '../money.ts'
import { table } from '../table.ts'

/** `kiln providers`: who is online, what they have and what they charge. */
export async function providers(o: GlobalOpts, io: Io): Promise<number> {
  const { client } = openClient(o)
  const list = await client.providers()
  if (o.json) {
    io.out(JSON.stringify(list))
    return Exit.ok
  }
  if (list.length === 0) {
    io.out('no providers online')
    return Exit.ok
  }
  const m = await client.money()
  io.out(
    table(
      ['provider', 'region', 'cpu', 'mem GiB', 'gpus', 'price', 'rep', 'state'],
      list.map((p) => [
        `${p.address.slice(0, 8)}…`,
        p.region,
        String(p.hardware.cpuCores),
        (p.hardware.memoryMb / 1024).toFixed(1),
        p.hardware.gpus.length ? p.hardware.gpus.map((g) => g.model).join(', ') : 'cpu only',
        m.rate(p.pricePerHour),
        p.reputation.toFixed(2),
        p.suspended ? 'suspended (reputation below the floor)' : p.available ? 'available' : (p.reason ?? 'busy'),
      ]),
    ),
  )
  return Exit.ok
}

/** `kiln jobs`: this client's recent jobs. */
export async function jobs(o: GlobalOpts & { all?: boolean }, io: Io): Promise<number> {
  const { client, identity } = openClient(o)
  const list = await client.list(o.all ? {} : { client: identity.address })
  if (o.json) {
    io.out(JSON.stringify(list))
    return Exit.ok
  }
  const m = await client.money()
  io.out(
    table(
      ['job', 'state', 'image', 'paid (for the work)', 'refunded', "provider's bond", 'created'],
      list.map((j) => {
        const w = j.settlement && settlementWords(j.settlement, m)
        return [
          j.id,
          j.state,
          j.image,
          m.amount(j.settlement?.work),
          w?.refunded ?? '-',
          w?.bond ?? '-',
          new Date(j.createdAt).toISOString().slice(0, 19),
        ]
      }),
    ),
  )
  return Exit.ok
}

/** `kiln keygen`: make this client's keypair (Solana keypair format). */
export async function keygen(o: GlobalOpts, io: Io): Promise<number> {
  const existed = existsSync(o.keypair)
  const id = loadOrCreateIdentity(o.keypair)
  io.out(
    o.json
      ? JSON.stringify({ address: id.address, keypair: o.keypair, created: !existed })
      : `${existed ? 'existing' : 'new'} keypair ${o.keypair}\naddress ${id.address}`,
  )
  return Exit.ok
}

/** `kiln whoami`: address and stablecoin balance. */
export async function whoami(o: GlobalOpts, io: Io): Promise<number> {
  const { client, identity } = openClient(o)
  const balance = await client.balance()
  io.out(
    o.json
      ? JSON.stringify({ address: identity.address, balance })
      : `address ${identity.address}\nbalance ${(await client.money()).amount(balance)}`,
  )
  return Exit.ok
}
