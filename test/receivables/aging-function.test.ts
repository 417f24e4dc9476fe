import { describe, expect, it } from '@jest/globals';
import { parseBucketEdges } from '../../src/modules/ledger/aging.js';
import { assembleAging, bucketLabels } from '../../src/modules/receivables/aging.js';

/** The kind-agnostic aging assembly (receivables today, payables at merge): pure, no database. */
describe('aging: bucket edges and assembly', () => {
  it('parses bucket edges and refuses what is not ascending positive whole days', () => {
    expect(parseBucketEdges(undefined)).toEqual([30, 60, 90]);
    expect(parseBucketEdges('15,30,60')).toEqual([15, 30, 60]);
    for (const bad of ['', '0,30', '30,30', '60,30', 'a', '1.5', '-5', '1,2,3,4,5,6,7,8,9,10,11']) expect(parseBucketEdges(bad)).toBeUndefined();
    expect(bucketLabels([30, 60, 90])).toEqual(['current', '1-30', '31-60', '61-90', '>90']);
    expect(bucketLabels([15])).toEqual(['current', '1-15', '>15']);
  });

  it('sums per party and in total, every total the exact sum of its buckets, credits included', () => {
    const r = assembleAging([
      { partyId: 'b', partyName: 'Beta', bucket: 'current', amount: '100.10' },
      { partyId: 'a', partyName: 'Alpha', bucket: '>90', amount: '0.20' },
      { partyId: 'a', partyName: 'Alpha', bucket: '>90', amount: '0.10' },
      { partyId: 'a', partyName: 'Alpha', bucket: 'current', amount: '-50.00' },
      { partyId: 'z', partyName: 'Zero', bucket: '1-30', amount: '10.00' },
      { partyId: 'z', partyName: 'Zero', bucket: '31-60', amount: '-10.00' },
    ], [30, 60, 90], 2);
    expect(r.rows.map((x) => [x.partyName, x.buckets.map((b) => b.amount), x.total])).toEqual([
      ['Alpha', ['-50.00', '0.00', '0.00', '0.00', '0.30'], '-49.70'],
      ['Beta', ['100.10', '0.00', '0.00', '0.00', '0.00'], '100.10'],
      ['Zero', ['0.00', '10.00', '-10.00', '0.00', '0.00'], '0.00'],
    ]);
    expect(r.totals.map((b) => b.amount)).toEqual(['50.10', '10.00', '-10.00', '0.00', '0.30']);
    expect(r.total).toBe('50.40');
  });
});
