#!/usr/bin/env node
import { run } from './main.ts'

// `kiln status <job> | head -3`: the reader has what it wanted; stop quietly, as Unix tools do.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0)
    throw e
  })
}

process.exitCode = await run(process.argv.slice(2))
