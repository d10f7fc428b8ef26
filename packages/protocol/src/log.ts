/**
 * What every part logs through: the fields first, then the message, as pino takes them
 * (pino's Logger fits as is). Parts that take one from outside may ask for a Pick of it.
 */
export interface Logger {
  debug(obj: object, msg?: string): void
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
}

/** The logger of a part nobody gave one. */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} }
