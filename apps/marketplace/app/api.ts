'use client'
import { createTRPCClient, httpLink } from '@trpc/client'
import { moneyFormat, type TokenUnit } from '@kiln/protocol/money'
import type { AppRouter } from '@kiln/api'

/** The browser talks to the same origin's /trpc, served by the marketplace's own server. */
export const api = createTRPCClient<AppRouter>({ links: [httpLink({ url: '/trpc' })] })

/** Amounts as the CLI shows them (@kiln/protocol's formatter), in the marketplace's unit; nothing before it is known. */
export function money(units: number | null | undefined, unit: TokenUnit | null): string {
  return unit && units !== null && units !== undefined ? moneyFormat(unit).amount(units) : '–'
}

export function short(s: string | null | undefined, n = 6): string {
  return s ? `${s.slice(0, n)}…${s.slice(-4)}` : '–'
}
