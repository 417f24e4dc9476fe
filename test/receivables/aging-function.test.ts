import { describe, expect, it } from '@jest/globals';
import { parseBucketEdges } from '../../src/modules/ledger/aging.js';
import { bucketLabels, placeAging } from '../../src/modules/receivables/aging.js';

/** The aging's bucket edges and the placing of the SQL's sums: pure, no database. */
describe('aging: bucket edges and assembly', () => {
  it('parses bucket edges and refuses what is not ascending positive whole days', () => {
    expect(parseBucketEdges(undefined)).toEqual([30, 60, 90]);
    expect(parseBucketEdges('15,30,60')).toEqual([15, 30, 60]);
    for (const bad of ['', '0,30', '30,30', '60,30', 'a', '1.5', '-5', '1,2,3,4,5,6,7,8,9,10,11']) expect(parseBucketEdges(bad)).toBeUndefined();
    expect(bucketLabels([30, 60, 90])).toEqual(['current', '1-30', '31-60', '61-90', '>90']);
    expect(bucketLabels([15])).toEqual(['current', '1-15', '>15']);
  });

  it('places the SQL sums per party (in their order) and in total; a missing bucket is zero; an all-zero party is left out', () => {
    const r = placeAging([
      { partyId: 'a', partyName: 'Alpha', bucket: 'current', amount: '-50.00' },
      { partyId: 'a', partyName: 'Alpha', bucket: '>90', amount: '0.30' },
      { partyId: 'a', partyName: 'Alpha', bucket: null, amount: '-49.70' },
      { partyId: 'b', partyName: 'Beta', bucket: 'current', amount: '100.10' },
      { partyId: 'b', partyName: 'Beta', bucket: null, amount: '100.10' },
      { partyId: 'n', partyName: 'Nil', bucket: '1-30', amount: '0.00' },
      { partyId: 'n', partyName: 'Nil', bucket: null, amount: '0.00' },
      { partyId: 'z', partyName: 'Zero', bucket: '1-30', amount: '10.00' },
      { partyId: 'z', partyName: 'Zero', bucket: '31-60', amount: '-10.00' },
      { partyId: 'z', partyName: 'Zero', bucket: null, amount: '0.00' },
      { partyId: null, partyName: null, bucket: 'current', amount: '50.10' },
      { partyId: null, partyName: null, bucket: '1-30', amount: '10.00' },
      { partyId: null, partyName: null, bucket: '31-60', amount: '-10.00' },
      { partyId: null, partyName: null, bucket: '>90', amount: '0.30' },
      { partyId: null, partyName: null, bucket: null, amount: '50.40' },
    ], [30, 60, 90], 2);
    expect(r.rows.map((x) => [x.partyName, x.buckets.map((b) => b.amount), x.total])).toEqual([
      ['Alpha', ['-50.00', '0.00', '0.00', '0.00', '0.30'], '-49.70'],
      ['Beta', ['100.10', '0.00', '0.00', '0.00', '0.00'], '100.10'],
      ['Zero', ['0.00', '10.00', '-10.00', '0.00', '0.00'], '0.00'],
    ]);
    expect(r.totals.map((b) => b.amount)).toEqual(['50.10', '10.00', '-10.00', '0.00', '0.30']);
    expect(r.total).toBe('50.40');
    expect(placeAging([], [15], 2)).toEqual({ bucketLabels: ['current', '1-15', '>15'], rows: [], totals: [{ bucket: 'current', amount: '0.00' }, { bucket: '1-15', amount: '0.00' }, { bucket: '>15', amount: '0.00' }], total: '0.00' });
  });
});
