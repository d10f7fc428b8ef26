import { describe, expect, expectTypeOf, it } from 'vitest'
import { isKilnError, KilnError, kilnErrorFromJSON, type KilnErrorContext } from '../src/index.ts'

describe('isKilnError with a kind', () => {
  it('narrows the context to the fields that kind carries', () => {
    const e: unknown = new KilnError('PEER_UNREACHABLE', 'no result by the run deadline', {
      deadline: 1_700_000_000_000,
    })
    if (!isKilnError(e, 'PEER_UNREACHABLE')) throw new Error('expected a PEER_UNREACHABLE')
    expectTypeOf(e.kind).toEqualTypeOf<'PEER_UNREACHABLE'>()
    expectTypeOf(e.context.deadline).toEqualTypeOf<number | undefined>()
    expectTypeOf(e.context.lost).toEqualTypeOf<true | undefined>()
    expect(e.context.deadline).toBe(1_700_000_000_000)

    const running: unknown = new KilnError('JOB_WRONG_STATE', 'the run is still going', { running: true })
    if (!isKilnError(running, 'JOB_WRONG_STATE')) throw new Error('expected a JOB_WRONG_STATE')
    expectTypeOf(running.context.running).toEqualTypeOf<true | undefined>()
    expect(running.context.running).toBe(true)
  })

  it('answers by kind at run time, also for an error rebuilt from its JSON form', () => {
    const lost = kilnErrorFromJSON(
      JSON.parse(JSON.stringify(new KilnError('PEER_UNREACHABLE', 'the provider has no result', { lost: true }))),
    )
    expect(isKilnError(lost, 'PEER_UNREACHABLE') && lost.context.lost).toBe(true)
    expect(isKilnError(lost, 'JOB_WRONG_STATE')).toBe(false)
    expect(isKilnError(lost)).toBe(true)
    expect(isKilnError({ kind: 'PEER_UNREACHABLE', context: { lost: true } }, 'PEER_UNREACHABLE')).toBe(false)
  })

  it('leaves kinds without typed fields, and the unnarrowed error, free-form', () => {
    const e: unknown = new KilnError('CONFIG_INVALID', 'bad keys', { keys: ['price'] })
    if (!isKilnError(e)) throw new Error('expected a KilnError')
    expectTypeOf(e.context).toEqualTypeOf<KilnErrorContext>()
    if (!isKilnError(e, 'CONFIG_INVALID')) throw new Error('expected a CONFIG_INVALID')
    expectTypeOf(e.context).toEqualTypeOf<KilnErrorContext>()
    expect(e.context.keys).toEqual(['price'])
  })

  it('does not compile a typed field of the wrong type at the throw site', () => {
    // @ts-expect-error `running` is `true` when set, never a string
    const e = new KilnError('JOB_WRONG_STATE', 'x', { running: 'yes' })
    expect(e.kind).toBe('JOB_WRONG_STATE')
  })
})
