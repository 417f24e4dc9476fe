import { describe, expect, it } from '@jest/globals';
import { isCalendarDate } from '../../src/platform/http/calendar-date.js';

// isCalendarDate counts the days of the month out instead of parsing the day with Date and formatting it back (it runs
// for every entry of a batch). It must answer what that round trip answers: the day exists as written, from year 1.
const asWritten = (v: string) => {
  if (v.length !== 10) return false;
  const d = new Date(`${v}T00:00:00Z`);
  return v >= '0001' && !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === v;
};

describe('isCalendarDate', () => {
  it('answers as Date does for every day, month and day number around leap years, century years and the ends of the range', () => {
    const years = [0, 1, 3, 4, 100, 400, 1582, 1600, 1700, 1800, 1900, 1996, 2000, 2023, 2024, 2026, 2100, 2400, 9996, 9999];
    const differ: string[] = [];
    let checked = 0;
    for (const y of years) {
      for (let m = 0; m <= 13; m++) {
        for (let d = 0; d <= 32; d++) {
          const v = `${String(y).padStart(4, '0')}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}`;
          checked++;
          if (isCalendarDate(v) !== asWritten(v)) differ.push(v);
        }
      }
    }
    expect(checked).toBe(years.length * 14 * 33);
    expect(differ).toEqual([]);
    expect(['2024-02-29', '2000-02-29', '0001-01-01', '9999-12-31'].map(isCalendarDate)).toEqual([true, true, true, true]);
    expect(['2023-02-29', '1900-02-29', '0000-01-01', '2026-04-31'].map(isCalendarDate)).toEqual([false, false, false, false]);
  });

  it('refuses what is not YYYY-MM-DD in digits', () => {
    const malformed = ['2026-1-015', '2026/01/15', ' 2026-01-1', '2026-01-1 ', '+02026-01-', '２０２６-01-15', 'abcd-ef-gh', '2026-01-15T', '', '2026-0a-15', '-001-01-01', '2026-01-15Z'];
    expect(malformed.filter(isCalendarDate)).toEqual([]);
    expect(malformed.filter(asWritten)).toEqual([]);
  });
});
