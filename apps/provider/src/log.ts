/** What the provider's parts log through; pino's Logger fits it as is. */
export interface Logger {
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
}
