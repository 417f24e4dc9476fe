import { describe, expect, it } from '@jest/globals';
import { comparativeRange } from '../../src/modules/ledger/reports.service.js';

/**
 * previous_year maps both ends of a range by the same rule: a month end stays a month end. A range starting on a
 * non-leap 28 February (a month end) starts on the previous year's last day of February, as its end does: the
 * comparative of one day is one day (before: 2028-02-28..2028-02-29, two days).
 */
describe('comparativeRange previous_year: a range starting on a month end', () => {
  it('2029-02-28..2029-02-28 → 2028-02-29..2028-02-29 (one day for one day)', () => {
    expect(comparativeRange('2029-02-28', '2029-02-28', 'previous_year')).toEqual({ from: '2028-02-29', to: '2028-02-29' });
  });

  it('a range from a non-leap month end over a month: 2029-02-28..2029-03-31 → 2028-02-29..2028-03-31', () => {
    expect(comparativeRange('2029-02-28', '2029-03-31', 'previous_year')).toEqual({ from: '2028-02-29', to: '2028-03-31' });
  });

  it('unchanged: a leap day maps to 28 February, month starts and mid-month days keep their day', () => {
    expect(comparativeRange('2028-02-29', '2028-02-29', 'previous_year')).toEqual({ from: '2027-02-28', to: '2027-02-28' });
    expect(comparativeRange('2028-02-29', '2028-03-30', 'previous_year')).toEqual({ from: '2027-02-28', to: '2027-03-30' });
    expect(comparativeRange('2028-03-01', '2029-02-28', 'previous_year')).toEqual({ from: '2027-03-01', to: '2028-02-29' });
    expect(comparativeRange('2028-02-28', '2028-02-28', 'previous_year')).toEqual({ from: '2027-02-28', to: '2027-02-28' });
    expect(comparativeRange('2026-03-15', '2026-03-31', 'previous_year')).toEqual({ from: '2025-03-15', to: '2025-03-31' });
    expect(comparativeRange('2026-04-30', '2026-05-31', 'previous_year')).toEqual({ from: '2025-04-30', to: '2025-05-31' });
  });
});
