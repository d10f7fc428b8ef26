#!/usr/bin/env node
// Runs the TypeScript sources through tsx, so the workspace needs no separate build step.
import { register } from 'tsx/esm/api'
register()
await import('../src/bin.ts')
