import type { MoneyFormat } from '@kiln/protocol'
import type { SettlementMoney } from '@kiln/sdk'

/**
 * Where a settled run's money went, in the words every command uses. "paid" is always what the
 * client paid for the work (the fee comes out of it); the provider's bond is never pay: it
 * comes back to the provider or, when it was caught, is slashed to the client.
 */
export function settlementWords(s: SettlementMoney, m: MoneyFormat): { paid: string; refunded: string; bond: string } {
  return {
    paid: `${m.amount(s.work)} for the work (${m.amount(s.toProviderForWork)} to the provider, ${m.amount(s.fee)} fee)`,
    refunded: `${m.amount(s.refunded)} of the lock`,
    bond: s.bondSlashed
      ? `${m.amount(s.bondSlashed)} slashed to the client`
      : s.bondReturned
        ? `${m.amount(s.bondReturned)} returned to the provider`
        : 'none was posted',
  }
}
