import { dirname, isAbsolute, resolve } from 'node:path'
import pc from 'picocolors'
import { KilnError, type Address, type Identity, type JobSpecInput } from '@kiln/protocol'
import { uploadInput, type UploadedInput } from '@kiln/sdk'
import type { Io } from './context.ts'

/** What a placeholder digest stands in for while the rest of the spec is checked, before any upload. */
const PLACEHOLDER = '0'.repeat(64)

interface LocalInput {
  index: number
  name: string
  path: string
  kind?: 'file' | 'dir'
}

type RawInput = Record<string, unknown>

function inputsOf(spec: unknown): RawInput[] {
  const inputs = (spec as { inputs?: unknown } | null)?.inputs
  return Array.isArray(inputs) ? (inputs as RawInput[]) : []
}

/**
 * The spec's inputs that name a local `path` (relative to the spec file's folder) instead of a
 * source: `kiln submit` uploads them. Such an input gives no source, sha256 or size (they come
 * from the upload), and its kind, when given, must be what the path is.
 */
function localInputs(spec: unknown): LocalInput[] {
  const out: LocalInput[] = []
  inputsOf(spec).forEach((input, index) => {
    if (input === null || typeof input !== 'object' || !('path' in input)) return
    const field = `inputs.${index}`
    if (typeof input.path !== 'string' || input.path === '')
      throw invalid(field, 'path', 'a local file or folder, relative to the spec file')
    for (const k of ['source', 'sha256', 'size'] as const)
      if (k in input)
        throw invalid(field, k, `no ${k}: an input with a path is uploaded, and its ${k} comes from the upload`)
    if (input.kind !== undefined && input.kind !== 'file' && input.kind !== 'dir')
      throw invalid(field, 'kind', 'file or dir')
    out.push({
      index,
      name: typeof input.name === 'string' ? input.name : `#${index}`,
      path: input.path,
      ...(input.kind ? { kind: input.kind } : {}),
    })
  })
  return out
}

function invalid(field: string, key: string, expected: string): KilnError {
  return new KilnError('PAYLOAD_INVALID', `job spec: ${field}.${key} is not right: expected ${expected}`, {
    issues: [{ path: `${field}.${key}`, message: 'not right for a local input', expected }],
  })
}

/** The spec with each local input stood in for by a placeholder upload: to check the rest before sending anything. */
export function withPlaceholders(spec: JobSpecInput): JobSpecInput {
  const locals = new Set(localInputs(spec).map((l) => l.index))
  if (locals.size === 0) return spec
  return {
    ...spec,
    inputs: inputsOf(spec).map((input, i) => {
      if (!locals.has(i)) return input
      const { path: _path, ...rest } = input
      return { ...rest, source: 'upload', sha256: PLACEHOLDER, size: 0 }
    }),
  } as JobSpecInput
}

export interface UploadSpecOptions {
  api: string
  identity: Identity
  arbiter?: Address
  json?: boolean
  /** Draw a progress bar on stderr (a terminal, without --json). */
  tty?: boolean
  signal?: AbortSignal
}

/**
 * Uploads every local input of the spec (`path:`) to the marketplace and returns the spec with
 * each rewritten to `{ source: 'upload', sha256, size, kind }`. Progress: a bar on a terminal,
 * JSON lines on stderr under --json, one line per input otherwise.
 */
export async function uploadSpecInputs(
  spec: JobSpecInput,
  specFile: string,
  o: UploadSpecOptions,
  io: Io,
): Promise<JobSpecInput> {
  const locals = localInputs(spec)
  if (locals.length === 0) return spec
  const inputs = [...inputsOf(spec)]
  const root = dirname(resolve(specFile))
  for (const l of locals) {
    const path = isAbsolute(l.path) ? l.path : resolve(root, l.path)
    const show = progressShower(l.name, o, io)
    let up: UploadedInput
    try {
      up = await uploadInput({ url: o.api, identity: o.identity, ...(o.arbiter ? { arbiter: o.arbiter } : {}) }, path, {
        onProgress: show.progress,
        ...(o.signal ? { signal: o.signal } : {}),
      })
    } finally {
      show.end()
    }
    if (l.kind !== undefined && l.kind !== up.kind)
      throw invalid(`inputs.${l.index}`, 'kind', `${up.kind}: ${l.path} is a ${up.kind === 'dir' ? 'folder' : 'file'}`)
    const { path: _path, ...rest } = inputs[l.index]!
    inputs[l.index] = { ...rest, source: 'upload', sha256: up.sha256, size: up.size, kind: up.kind }
    if (!o.json && !o.tty)
      io.err(`${pc.green('✓')} uploaded ${l.name} (${l.path}, ${up.size} bytes, sha256 ${up.sha256.slice(0, 12)}…)`)
  }
  return { ...spec, inputs } as JobSpecInput
}

/** Throttled progress for one input: at most every 250 ms, and always the last. */
function progressShower(name: string, o: UploadSpecOptions, io: Io) {
  let last = 0
  let final: [number, number] | undefined
  const draw = (done: number, total: number) => {
    if (o.json) io.err(JSON.stringify({ progress: 'upload', input: name, done, total }))
    else if (o.tty) {
      const share = total === 0 ? 1 : done / total
      const width = 30
      const bar = '█'.repeat(Math.round(share * width)).padEnd(width, '░')
      process.stderr.write(
        `\r${pc.cyan('↑')} ${name} ${bar} ${(share * 100).toFixed(0).padStart(3)}% ${mib(done)}/${mib(total)}`,
      )
    }
  }
  return {
    progress(done: number, total: number) {
      final = [done, total]
      const now = Date.now()
      if (now - last < 250 && done < total) return
      last = now
      final = undefined
      draw(done, total)
    },
    end() {
      if (final) draw(...final)
      if (o.tty && !o.json) process.stderr.write('\n')
    },
  }
}

const mib = (n: number) => `${(n / 1024 ** 2).toFixed(1)} MiB`
