export * from './tar.ts'
export * from './store.ts'
export * from './entry.ts'
