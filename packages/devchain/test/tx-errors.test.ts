import { describe, expect, it } from 'vitest'
import { landsOnChain, txErrorJson, txErrorMessage } from '../src/tx-errors.ts'

// Shapes as litesvm 1.x hands them out (classes with these members).
class InstructionError {
  constructor(
    readonly index: number,
    private readonly inner: unknown,
  ) {}
  err(): unknown {
    return this.inner
  }
}
class TransactionErrorInsufficientFundsForRent {
  constructor(readonly accountIndex: number) {}
}

describe('transaction errors in RPC form', () => {
  it('names fieldless errors as agave serialises them', () => {
    expect(txErrorJson(7)).toBe('BlockhashNotFound')
    expect(txErrorJson(6)).toBe('AlreadyProcessed')
    expect(txErrorMessage('BlockhashNotFound')).toBe('Blockhash not found')
    expect(landsOnChain('BlockhashNotFound')).toBe(false)
  })

  it('nests instruction errors, custom codes in hex in the message', () => {
    const custom = txErrorJson(new InstructionError(0, { code: 1 }))
    expect(custom).toEqual({ InstructionError: [0, { Custom: 1 }] })
    expect(txErrorMessage(custom)).toBe('Error processing Instruction 0: custom program error: 0x1')
    const sig = txErrorJson(new InstructionError(2, 7))
    expect(sig).toEqual({ InstructionError: [2, 'MissingRequiredSignature'] })
    expect(txErrorMessage(sig)).toBe('Error processing Instruction 2: missing required signature for instruction')
    expect(landsOnChain(sig)).toBe(true)
  })

  it('keeps the account index of rent errors', () => {
    expect(txErrorJson(new TransactionErrorInsufficientFundsForRent(1))).toEqual({
      InsufficientFundsForRent: { account_index: 1 },
    })
  })
})
