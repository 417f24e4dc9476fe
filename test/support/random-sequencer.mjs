// With TEST_ORDER=random (CI sets it), test files run in a shuffled order: a file that only passes after
// another shows. (Tests inside a file keep their order: a file may tell a story step by step, like the
// worked month of the ledger.) The seed is printed; TEST_SEED=<n> repeats an order.
import Sequencer from '@jest/test-sequencer';

const Base = Sequencer.default ?? Sequencer;

/** mulberry32: a small seeded generator, so one seed gives one order. */
function generator(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export default class RandomOrderSequencer extends Base {
  sort(tests) {
    if (process.env.TEST_ORDER !== 'random') return super.sort(tests);
    const seed = Number(process.env.TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));
    const random = generator(seed);
    const shuffled = [...tests].sort((a, b) => a.path.localeCompare(b.path));
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
    }
    process.stderr.write(`test files in random order, seed ${seed} (TEST_ORDER=random TEST_SEED=${seed} npm test repeats it)\n`);
    return shuffled;
  }
}
