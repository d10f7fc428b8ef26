import { readFileSync } from 'node:fs'
import { imageRegistry, KilnError, type RegistryAuth, type SecretBundle } from '@kiln/protocol'

/** The environment variables registry credentials are read from when no --registry-auth names them. */
export const REGISTRY_USERNAME_ENV = 'KILN_REGISTRY_USERNAME'
export const REGISTRY_PASSWORD_ENV = 'KILN_REGISTRY_PASSWORD'

const HOW =
  'give each as --secret NAME (the value of the environment variable NAME) or --secret NAME=@FILE (the file, one trailing newline trimmed)'

function refuse(message: string, context: Record<string, unknown> = {}): KilnError {
  return new KilnError('SECRETS_UNSEALABLE', message, context)
}

/** A file's contents as a value: one trailing line break trimmed (what an editor or `echo` adds). */
function readValue(path: string, what: string): string {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (e) {
    throw refuse(`${what}: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? 'unreadable'})`, { path })
  }
  const value = text.replace(/\r?\n$/, '')
  if (value === '') throw refuse(`${what}: ${path} is empty`, { path })
  return value
}

/**
 * The values of a spec's secret names, from the command line and the environment, never from
 * the command line itself (a value typed there stays in shell history and shows in `ps`).
 * Each flag is `NAME` (the value of environment variable NAME) or `NAME=@FILE` (the file's
 * contents, one trailing newline trimmed); a name with no flag comes from the environment
 * variable of the same name. Every missing value is named at once.
 *
 * For a private image, the registry credentials: `registryAuth` is `USER:@FILE` (the password
 * in a file) or `USER` (the password in KILN_REGISTRY_PASSWORD); without it, both come from
 * KILN_REGISTRY_USERNAME and KILN_REGISTRY_PASSWORD. The server is the image's registry host.
 */
export function collectSecrets(
  names: readonly string[],
  flags: readonly string[],
  env: Record<string, string | undefined>,
  opts: { image?: string; privateImage?: boolean; registryAuth?: string } = {},
): SecretBundle {
  const sources = new Map<string, string | undefined>()
  for (const flag of flags) {
    const eq = flag.indexOf('=')
    const name = eq < 0 ? flag : flag.slice(0, eq)
    const rest = eq < 0 ? undefined : flag.slice(eq + 1)
    if (!names.includes(name))
      throw refuse(
        `--secret ${name}: the spec names no secret ${name} (${names.length > 0 ? `it names ${names.join(', ')}` : 'it names none'})`,
        { name },
      )
    if (sources.has(name)) throw refuse(`--secret ${name} is given twice`, { name })
    if (rest !== undefined && !rest.startsWith('@'))
      throw refuse(
        `--secret ${name}=...: a value is never given on the command line (shell history and ps show it); use --secret ${name} with the value in the environment variable ${name}, or --secret ${name}=@FILE`,
        { name },
      )
    sources.set(name, rest?.slice(1))
  }
  const values: Record<string, string> = {}
  const missing: string[] = []
  for (const name of names) {
    const path = sources.get(name)
    if (path !== undefined) {
      if (path === '') throw refuse(`--secret ${name}=@ names no file`, { name })
      values[name] = readValue(path, `secret ${name}`)
    } else if (env[name] !== undefined && env[name] !== '') values[name] = env[name]
    else missing.push(name)
  }
  if (missing.length > 0) throw refuse(`the spec's secrets ${missing.join(', ')} have no value: ${HOW}`, { missing })
  if (!opts.privateImage) {
    if (opts.registryAuth !== undefined)
      throw refuse('--registry-auth is for a spec with privateImage: true; this one pulls a public image')
    return { values }
  }
  return { values, registry: registryAuth(opts.image, opts.registryAuth, env) }
}

function registryAuth(
  image: string | undefined,
  flag: string | undefined,
  env: Record<string, string | undefined>,
): RegistryAuth {
  if (image === undefined) throw refuse('a private image needs its image reference to name the registry')
  const server = imageRegistry(image)
  let username: string | undefined
  let password: string | undefined
  if (flag === undefined) {
    username = env[REGISTRY_USERNAME_ENV]
    password = env[REGISTRY_PASSWORD_ENV]
  } else {
    const colon = flag.indexOf(':')
    username = colon < 0 ? flag : flag.slice(0, colon)
    const rest = colon < 0 ? undefined : flag.slice(colon + 1)
    if (rest !== undefined && !rest.startsWith('@'))
      throw refuse(
        `--registry-auth ${username}:...: a password is never given on the command line; use --registry-auth ${username}:@FILE, or --registry-auth ${username} with the password in ${REGISTRY_PASSWORD_ENV}`,
      )
    password = rest === undefined ? env[REGISTRY_PASSWORD_ENV] : readValue(rest.slice(1), `--registry-auth ${username}`)
  }
  if (!username || !password)
    throw refuse(
      `the spec's image ${image} is private (privateImage: true) and needs credentials for ${server}: set ${REGISTRY_USERNAME_ENV} and ${REGISTRY_PASSWORD_ENV}, or give --registry-auth USER:@FILE (or USER, the password in ${REGISTRY_PASSWORD_ENV})`,
      { server },
    )
  return { server, username, password }
}
