export * from './tar.ts'
export * from './store.ts'
