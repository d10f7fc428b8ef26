'use client'
import { createTRPCClient, httpLink } from '@trpc/client'
import type { AppRouter } from '../src/api/index.ts'

/** The browser talks to the same origin's /trpc, served by the marketplace's own server. */
export const api = createTRPCClient<AppRouter>({ links: [httpLink({ url: '/trpc' })] })

export function money(units: number | null | undefined): string {
  return units === null || units === undefined ? '–' : (units / 1e6).toFixed(4)
}

export function short(s: string | null | undefined, n = 6): string {
  return s ? `${s.slice(0, n)}…${s.slice(-4)}` : '–'
}
