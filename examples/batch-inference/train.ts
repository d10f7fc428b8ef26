/**
 * Trains the example's model: logistic regression over hashed word unigrams and bigrams
 * (the features workloads/infer/main.c computes), on train.tsv (label<TAB>text), and writes
 * model.bin in the KILNLR1 format. Deterministic: fixed order, epochs and rate, so the
 * committed model.bin is what this prints again.
 *
 *   npx tsx examples/batch-inference/train.ts [out.bin]
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const DIM = 4096
const EPOCHS = 200
const RATE = 0.5

function fnv1a(s: string, h = 2166136261): number {
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0
  return h
}

/** The same features as the C program: each word, and each adjacent pair joined by a space. */
export function features(text: string): number[] {
  const words = (text.match(/[A-Za-z0-9]+/g) ?? []).map((w) => w.toLowerCase().slice(0, 31))
  const out: number[] = []
  words.forEach((w, i) => {
    out.push(fnv1a(w) % DIM)
    const next = words[i + 1]
    if (next !== undefined) out.push(fnv1a(next, fnv1a(' ', fnv1a(w))) % DIM)
  })
  return out
}

export function train(rows: { label: number; text: string }[]): { bias: number; weight: Float32Array } {
  const w = new Float64Array(DIM)
  let b = 0
  for (let epoch = 0; epoch < EPOCHS; epoch++) {
    for (const { label, text } of rows) {
      const f = features(text)
      let z = b
      for (const i of f) z += w[i]!
      const g = 1 / (1 + Math.exp(-z)) - label
      b -= RATE * g
      for (const i of f) w[i]! -= RATE * g
    }
  }
  return { bias: Math.fround(b), weight: Float32Array.from(w) }
}

export function encodeModel(m: { bias: number; weight: Float32Array }): Buffer {
  const buf = Buffer.alloc(16 + 4 * m.weight.length)
  buf.write('KILNLR1\0', 0, 'latin1')
  buf.writeUInt32LE(m.weight.length, 8)
  buf.writeFloatLE(m.bias, 12)
  m.weight.forEach((v, i) => buf.writeFloatLE(v, 16 + 4 * i))
  return buf
}

const here = dirname(fileURLToPath(import.meta.url))
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const rows = readFileSync(join(here, 'train.tsv'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [label, text] = l.split('\t')
      return { label: Number(label), text: text ?? '' }
    })
  const out = process.argv[2] ?? join(here, 'model.bin')
  writeFileSync(out, encodeModel(train(rows)))
  process.stdout.write(`wrote ${out} (${DIM} features, ${rows.length} examples)\n`)
}
