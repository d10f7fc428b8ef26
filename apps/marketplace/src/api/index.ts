export { appRouter, type AppRouter } from './router.ts'
export type { ApiContext } from './trpc.ts'
