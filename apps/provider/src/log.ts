import type { Logger as KilnLogger } from '@kiln/protocol'

/** The part of the one Logger (@kiln/protocol) the provider's parts log through; pino fits it. */
export type Logger = Pick<KilnLogger, 'info' | 'warn'>
