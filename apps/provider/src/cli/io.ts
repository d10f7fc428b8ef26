/** Exit codes mean the same in every command, so scripts (and tests) can branch on them. */
export const Exit = {
  ok: 0,
  /** The daemon answered with a failure, or something unexpected broke. */
  failed: 1,
  /** Bad flags or arguments. */
  badInput: 2,
  /** No daemon is running for this data dir (status, pause, resume). */
  notRunning: 3,
  /** `start`: another daemon already runs for this data dir (it names its PID). */
  alreadyRunning: 4,
  /** The configuration cannot be used (sysexits' EX_CONFIG). */
  config: 78,
} as const

export interface Io {
  out(text: string): void
  err(text: string): void
}

export const stdio: Io = {
  out: (t) => process.stdout.write(`${t}\n`),
  err: (t) => process.stderr.write(`${t}\n`),
}
