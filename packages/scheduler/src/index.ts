export * from './match.ts'
export * from './states.ts'
export * from './store.ts'
export * from './queues.ts'
