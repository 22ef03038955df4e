// Endpoint picking: the filters (available now, not refused, untried first), then power of two
// choices on outstanding requests, with a seeded random source.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  availableNow,
  byOutstanding,
  notRefused,
  type Pickable,
  pick,
  powerOfTwo,
  untriedFirst,
} from '../../gateway/upstream/picker.js';
import { mulberry32 } from '../../models/reference.js';

/** The untried-first filter, then P2C on outstanding requests: the picker without availability. */
function pickEndpoint<E extends Pickable>(
  endpoints: readonly E[],
  random: () => number,
  tried?: ReadonlySet<E>,
) {
  return powerOfTwo(untriedFirst(endpoints, tried), random, byOutstanding);
}

interface Ep extends Pickable {
  readonly name: string;
  outstanding: number;
}

const eps = (...loads: number[]): Ep[] => loads.map((outstanding, i) => ({ name: `e${i}`, outstanding }));

const noRandom = () => {
  throw new Error('the random source was consulted');
};

/** Returns the given values in order, then fails. */
function script(...values: number[]): () => number {
  let i = 0;
  return () => {
    if (i >= values.length) throw new Error('script exhausted');
    return values[i++] as number;
  };
}

/** Counts picks by name over `n` seeded draws. */
function tally(list: readonly Ep[], n: number, seed: number, tried?: ReadonlySet<Ep>): Map<string, number> {
  const random = mulberry32(seed);
  const counts = new Map<string, number>(list.map((e) => [e.name, 0]));
  for (let i = 0; i < n; i++) {
    const e = pickEndpoint(list, random, tried);
    assert.ok(e !== undefined);
    counts.set(e.name, (counts.get(e.name) ?? 0) + 1);
  }
  return counts;
}

function assertBinomial(count: number, n: number, p: number, what: string): void {
  const sd = Math.sqrt(n * p * (1 - p));
  assert.ok(
    Math.abs(count - n * p) <= 4 * sd,
    `${what}: ${count} of ${n}, expected ${n * p} ± ${(4 * sd).toFixed(1)}`,
  );
}

describe('pickEndpoint: small cases', () => {
  test('no endpoints: undefined', () => {
    assert.equal(pickEndpoint([], noRandom), undefined);
  });

  test('one endpoint: that one, without drawing', () => {
    const [only] = eps(7);
    assert.equal(pickEndpoint([only!], noRandom), only);
  });

  // Scripted draws over four endpoints: i = floor(r1 * 4), j = floor(r2 * 3), shifted past i.
  const table: { name: string; loads: number[]; draws: [number, number]; pick: string }[] = [
    { name: 'e0 vs e1 (j shifted past i=0), e1 less loaded', loads: [5, 1, 0, 0], draws: [0, 0], pick: 'e1' },
    { name: 'e0 vs e2, e0 less loaded', loads: [1, 0, 9, 0], draws: [0.1, 0.5], pick: 'e0' },
    { name: 'e3 vs e0, e0 less loaded', loads: [2, 0, 0, 3], draws: [0.99, 0], pick: 'e0' },
    { name: 'e3 vs e2 (j=2 stays below i=3)', loads: [0, 0, 4, 3], draws: [0.99, 0.99], pick: 'e3' },
    { name: 'e2 vs e3 (j=2 shifted past i=2)', loads: [0, 0, 4, 3], draws: [0.5, 0.7], pick: 'e3' },
    { name: 'a tie goes to the first drawn (e2)', loads: [0, 0, 3, 3], draws: [0.5, 0.7], pick: 'e2' },
    { name: 'a tie goes to the first drawn (e3)', loads: [0, 0, 3, 3], draws: [0.99, 0.99], pick: 'e3' },
    {
      name: 'the two least loaded elsewhere do not matter',
      loads: [0, 0, 8, 9],
      draws: [0.5, 0.7],
      pick: 'e2',
    },
  ];
  for (const c of table) {
    test(c.name, () => {
      const list = eps(...c.loads);
      assert.equal(pickEndpoint(list, script(...c.draws))?.name, c.pick);
    });
  }
});

describe('pickEndpoint: power of two choices', () => {
  test('two endpoints: always the less loaded one', () => {
    const list = eps(5, 1);
    assert.deepEqual(
      [...tally(list, 1000, 1)],
      [
        ['e0', 0],
        ['e1', 1000],
      ],
    );
  });

  test('the two candidates are distinct and every pair is equally likely', () => {
    const compared: string[] = [];
    const list = [0, 1, 2, 3, 4].map((i) => ({
      name: `e${i}`,
      get outstanding() {
        compared.push(`e${i}`);
        return 0;
      },
    }));
    const pairs = new Map<string, number>();
    const random = mulberry32(11);
    const N = 50_000;
    for (let k = 0; k < N; k++) {
      compared.length = 0;
      pickEndpoint(list, random);
      const names = [...new Set(compared)].sort();
      assert.equal(names.length, 2, `compared ${compared.join(', ')}`);
      pairs.set(names.join('+'), (pairs.get(names.join('+')) ?? 0) + 1);
    }
    assert.equal(pairs.size, 10, 'all C(5,2) pairs occur');
    for (const [pair, count] of pairs) assertBinomial(count, N, 1 / 10, pair);
  });

  test('the most loaded endpoint is never picked; each rank is picked (n-1-rank)/C(n,2) of the time', () => {
    // Loads 0 < 1 < 2 < 3: rank r wins the pairs with a more loaded partner: 3, 2, 1, 0 of 6.
    const N = 60_000;
    const counts = tally(eps(0, 1, 2, 3), N, 5);
    assert.equal(counts.get('e3'), 0);
    assertBinomial(counts.get('e0')!, N, 3 / 6, 'e0');
    assertBinomial(counts.get('e1')!, N, 2 / 6, 'e1');
    assertBinomial(counts.get('e2')!, N, 1 / 6, 'e2');
  });

  for (const n of [2, 3, 5, 8]) {
    test(`${n} equally loaded endpoints share picks evenly`, () => {
      const N = 40_000;
      const counts = tally(eps(...new Array<number>(n).fill(2)), N, 100 + n);
      for (const [name, count] of counts) assertBinomial(count, N, 1 / n, name);
    });
  }

  test('load follows the picks: a simulated burst stays balanced within one request', () => {
    const list = eps(0, 0, 0, 0, 0, 0);
    const random = mulberry32(2024);
    for (let k = 0; k < 6000; k++) pickEndpoint(list, random)!.outstanding += 1;
    const loads = list.map((e) => e.outstanding);
    assert.ok(Math.max(...loads) - Math.min(...loads) <= 2, `loads ${loads.join(' ')}`);
  });
});

describe('pickEndpoint: tried endpoints', () => {
  test('never a tried endpoint while an untried one is left', () => {
    const list = eps(0, 5, 0, 9, 1);
    for (const triedIdx of [[0], [0, 2], [0, 2, 4], [1, 3], [0, 1, 2, 3]]) {
      const tried = new Set(triedIdx.map((i) => list[i]!));
      const counts = tally(list, 2000, triedIdx.length, tried);
      for (const e of tried) assert.equal(counts.get(e.name), 0, `${e.name} is tried`);
    }
  });

  test('the untried are still compared by load', () => {
    const list = eps(0, 5, 3);
    // e0 is tried and the least loaded: between e1 and e2, e2 always wins.
    const counts = tally(list, 1000, 9, new Set([list[0]!]));
    assert.deepEqual(
      [...counts],
      [
        ['e0', 0],
        ['e1', 0],
        ['e2', 1000],
      ],
    );
  });

  test('one untried endpoint: that one, without drawing', () => {
    const list = eps(0, 0, 50);
    assert.equal(pickEndpoint(list, noRandom, new Set([list[0]!, list[1]!])), list[2]);
  });

  test('all tried: pick among all again (a retry may go back)', () => {
    const list = eps(4, 0, 4);
    const counts = tally(list, 30_000, 13, new Set(list));
    // e1 is in two of the three pairs and wins both.
    assertBinomial(counts.get('e1')!, 30_000, 2 / 3, 'e1');
    // With only two and both tried, the less loaded is picked.
    const two = eps(3, 1);
    assert.equal(pickEndpoint(two, mulberry32(1), new Set(two)), two[1]);
  });

  test('tried endpoints that are not in the list are ignored', () => {
    const list = eps(2, 2);
    const stranger: Ep = { name: 'x', outstanding: 0 };
    const counts = tally(list, 10_000, 17, new Set([stranger]));
    assertBinomial(counts.get('e0')!, 10_000, 0.5, 'e0');
  });

  test('an empty tried set changes nothing', () => {
    const list = eps(1, 0, 1, 1);
    const a = tally(list, 1000, 21);
    const b = tally(list, 1000, 21, new Set());
    assert.deepEqual([...a], [...b]);
  });
});

describe('the pipeline: filters, then the pick', () => {
  interface Ep2 extends Ep {
    up: boolean;
    available(now: number): boolean;
  }
  const fleet = (...loads: number[]): Ep2[] =>
    eps(...loads).map((e) => ({
      ...e,
      up: true,
      available(this: Ep2) {
        return this.up;
      },
    }));

  test('a filter that drops nothing returns the very array it was given (nothing allocated)', () => {
    const list = fleet(0, 1, 2);
    assert.equal(availableNow(list, 0), list);
    assert.equal(notRefused(list, undefined), list);
    assert.equal(notRefused(list, new Set()), list);
    assert.equal(untriedFirst(list, undefined), list);
    assert.equal(untriedFirst(list, new Set()), list);
    assert.equal(untriedFirst(list, new Set(list)), list, 'all tried: all again');
  });

  test('each filter drops what it names', () => {
    const list = fleet(0, 1, 2, 3);
    list[1]!.up = false;
    assert.deepEqual(
      availableNow(list, 0).map((e) => e.name),
      ['e0', 'e2', 'e3'],
    );
    assert.deepEqual(
      notRefused(list, new Set([list[0]!, list[3]!])).map((e) => e.name),
      ['e1', 'e2'],
    );
    assert.deepEqual(
      untriedFirst(list, new Set([list[2]!])).map((e) => e.name),
      ['e0', 'e1', 'e3'],
    );
    assert.deepEqual(notRefused(list, new Set(list)), [], 'refused ones never come back for the request');
  });

  test('pick applies every filter before drawing', () => {
    const list = fleet(0, 0, 0, 0);
    list[0]!.up = false;
    const refused = new Set([list[1]!]);
    const tried = new Set([list[2]!]);
    assert.equal(pick(list, 0, noRandom, refused, tried), list[3], 'one left: no draw');
    assert.equal(
      pick(list, 0, noRandom, new Set([list[1]!, list[3]!]), tried),
      list[2],
      'only a tried one left',
    );
    assert.equal(pick(list, 0, noRandom, new Set(list), undefined), undefined);
  });

  test('pick on unfiltered endpoints draws as pickEndpoint does', () => {
    const list = fleet(3, 1, 4, 1, 5);
    const a = mulberry32(7);
    const b = mulberry32(7);
    for (let k = 0; k < 1000; k++)
      assert.equal(pick(list, 0, a, undefined, undefined), pickEndpoint(list, b));
  });

  test('the pick step compares by the load it is given (where a queue-depth scorer joins)', () => {
    const list = [
      { name: 'a', outstanding: 1, queued: 9 },
      { name: 'b', outstanding: 2, queued: 0 },
    ];
    assert.equal(powerOfTwo(list, script(0, 0), byOutstanding)?.name, 'a');
    assert.equal(powerOfTwo(list, script(0, 0), (e) => e.outstanding + e.queued)?.name, 'b');
  });
});
