import { describe, expect, it } from '@jest/globals';
import { parseBucketEdges } from '../../src/modules/ledger/aging.js';
import { bucketLabels, placeBuckets } from '../../src/modules/receivables/aging.js';

/** The aging's bucket edges and the placing of the SQL's sums: pure, no database. */
describe('aging: bucket edges and assembly', () => {
  it('parses bucket edges and refuses what is not ascending positive whole days', () => {
    expect(parseBucketEdges(undefined)).toEqual([30, 60, 90]);
    expect(parseBucketEdges('15,30,60')).toEqual([15, 30, 60]);
    for (const bad of ['', '0,30', '30,30', '60,30', 'a', '1.5', '-5', '1,2,3,4,5,6,7,8,9,10,11']) expect(parseBucketEdges(bad)).toBeUndefined();
    expect(bucketLabels([30, 60, 90])).toEqual(['current', '1-30', '31-60', '61-90', '>90']);
    expect(bucketLabels([15])).toEqual(['current', '1-15', '>15']);
  });

  it('places the SQL\'s amounts under their bucket labels; a bucket without an amount is zero', () => {
    const labels = bucketLabels([30, 60, 90]);
    expect(placeBuckets(labels, [0, 4], ['-50.00', '0.30'], 2).map((b) => [b.bucket, b.amount])).toEqual([
      ['current', '-50.00'], ['1-30', '0.00'], ['31-60', '0.00'], ['61-90', '0.00'], ['>90', '0.30'],
    ]);
    expect(placeBuckets(bucketLabels([15]), [], [], 2)).toEqual([{ bucket: 'current', amount: '0.00' }, { bucket: '1-15', amount: '0.00' }, { bucket: '>15', amount: '0.00' }]);
    expect(placeBuckets(labels, [1], ['7'], 0)[0].amount).toBe('0');
  });
});
