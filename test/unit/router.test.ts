// The router: a pure function of (compiled policy, request facts, random source). Table-driven
// cases for the order (version pin, header routes, sticky, split), then seeded statistics: the
// split within binomial bounds, and stickiness when the weights move.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GW_ERRORS } from '../../gateway/errors.js';
import { type CompiledPolicy, compilePolicy, formatIssue } from '../../gateway/policy/compile.js';
import { type RandomSource, type RequestFacts, route, stickyPoint } from '../../gateway/router.js';
import { mulberry32 } from '../../models/reference.js';

function compile(text: string): CompiledPolicy {
  const result = compilePolicy(text);
  if (!result.ok) assert.fail(result.errors.map(formatIssue).join('\n'));
  return result.policy;
}

/** The policy of the tests; `split` replaces the mlp split. */
function policy(split = '{ stable: 90, candidate: 10 }'): CompiledPolicy {
  return compile(`
version: 1
backends:
  pool-a: { endpoints: [http://127.0.0.1:8001] }
  pool-b: { endpoints: [http://127.0.0.1:8002] }
models:
  mlp:
    variants:
      stable: { backend: pool-a, model: mlp, version: "1" }
      candidate: { backend: pool-b, model: mlp, version: "2" }
    split: ${split}
    sticky: { header: X-User-Id }
    routes:
      - match: { headers: { x-infergate-variant: candidate } }
        variant: candidate
      - match: { headers: { X-Team: ml, x-env: staging } }
        variant: candidate
      - match: { headers: { x-infergate-variant: stable } }
        variant: stable
      - match: { headers: { x-team: ml } }
        variant: stable
  simple:
    variants:
      default: { backend: pool-a, model: simple }
  dark:
    variants:
      stable: { backend: pool-a, model: dark, version: "1" }
      dark: { backend: pool-b, model: dark, version: "2" }
      twin: { backend: pool-b, model: dark-twin, version: "2" }
    split: { stable: 100, dark: 0, twin: 0 }
    routes:
      - match: { headers: { x-dark: "1" } }
        variant: dark
`);
}

const P = policy();

/** A random source that must not be consulted. */
const noRandom: RandomSource = () => {
  throw new Error('the random source was consulted');
};
const constant =
  (x: number): RandomSource =>
  () =>
    x;

type Expect =
  | { variant: string; reason: 'version' | 'route' | 'sticky' | 'split' }
  | { error: 'model_not_found' | 'version_not_found' };

interface Case {
  name: string;
  facts: RequestFacts;
  random: RandomSource;
  expect: Expect;
}

/** A user whose sticky point for `model` lies in [lo, hi). */
function userWithPoint(model: string, lo: number, hi: number): string {
  for (let i = 0; ; i++) {
    const u = `probe-${i}`;
    const p = stickyPoint(model, u);
    if (p >= lo && p < hi) return u;
  }
}
const stableUser = userWithPoint('mlp', 0, 90);
const candidateUser = userWithPoint('mlp', 90, 100);

const cases: Case[] = [
  // Unknown model: the 404 answer, whatever else the request carries.
  {
    name: 'unknown model',
    facts: { model: 'nope', headers: {} },
    random: noRandom,
    expect: { error: 'model_not_found' },
  },
  {
    name: 'unknown model with a version and a route header',
    facts: { model: 'MLP', version: '1', headers: { 'x-infergate-variant': 'candidate' } },
    random: noRandom,
    expect: { error: 'model_not_found' },
  },
  // Version pins come first.
  {
    name: 'version 1 pin',
    facts: { model: 'mlp', version: '1', headers: {} },
    random: noRandom,
    expect: { variant: 'stable', reason: 'version' },
  },
  {
    name: 'version 2 pin',
    facts: { model: 'mlp', version: '2', headers: {} },
    random: noRandom,
    expect: { variant: 'candidate', reason: 'version' },
  },
  {
    name: 'a version pin wins over a header route and a sticky user',
    facts: {
      model: 'mlp',
      version: '1',
      headers: { 'x-infergate-variant': 'candidate', 'x-user-id': candidateUser },
    },
    random: noRandom,
    expect: { variant: 'stable', reason: 'version' },
  },
  {
    name: 'unknown version',
    facts: { model: 'mlp', version: '3', headers: {} },
    random: noRandom,
    expect: { error: 'version_not_found' },
  },
  {
    name: 'version of a model without versions',
    facts: { model: 'simple', version: '1', headers: {} },
    random: noRandom,
    expect: { error: 'version_not_found' },
  },
  {
    name: 'a pin reaches a zero-weight variant (first variant of that version)',
    facts: { model: 'dark', version: '2', headers: {} },
    random: noRandom,
    expect: { variant: 'dark', reason: 'version' },
  },
  // Header routes before sticky and split.
  {
    name: 'header route to candidate',
    facts: { model: 'mlp', headers: { 'x-infergate-variant': 'candidate' } },
    random: noRandom,
    expect: { variant: 'candidate', reason: 'route' },
  },
  {
    name: 'header route beats the sticky assignment',
    facts: { model: 'mlp', headers: { 'x-infergate-variant': 'candidate', 'x-user-id': stableUser } },
    random: noRandom,
    expect: { variant: 'candidate', reason: 'route' },
  },
  {
    name: 'header route to stable beats a sticky candidate user',
    facts: { model: 'mlp', headers: { 'x-infergate-variant': 'stable', 'x-user-id': candidateUser } },
    random: noRandom,
    expect: { variant: 'stable', reason: 'route' },
  },
  {
    name: 'header values match exactly (case matters)',
    facts: { model: 'mlp', headers: { 'x-infergate-variant': 'Candidate' } },
    random: constant(0),
    expect: { variant: 'stable', reason: 'split' },
  },
  {
    name: 'a repeated header: the first value counts',
    facts: { model: 'mlp', headers: { 'x-infergate-variant': ['candidate', 'stable'] } },
    random: noRandom,
    expect: { variant: 'candidate', reason: 'route' },
  },
  {
    name: 'every header of a rule must match: both (rule 2 before rule 4)',
    facts: { model: 'mlp', headers: { 'x-team': 'ml', 'x-env': 'staging' } },
    random: noRandom,
    expect: { variant: 'candidate', reason: 'route' },
  },
  {
    name: 'every header of a rule must match: one of two falls to a later rule',
    facts: { model: 'mlp', headers: { 'x-team': 'ml', 'x-env': 'prod' } },
    random: noRandom,
    expect: { variant: 'stable', reason: 'route' },
  },
  {
    name: 'a route reaches a zero-weight variant',
    facts: { model: 'dark', headers: { 'x-dark': '1' } },
    random: noRandom,
    expect: { variant: 'dark', reason: 'route' },
  },
  // Sticky assignment.
  {
    name: 'sticky user below the boundary',
    facts: { model: 'mlp', headers: { 'x-user-id': stableUser } },
    random: noRandom,
    expect: { variant: 'stable', reason: 'sticky' },
  },
  {
    name: 'sticky user above the boundary',
    facts: { model: 'mlp', headers: { 'x-user-id': candidateUser } },
    random: noRandom,
    expect: { variant: 'candidate', reason: 'sticky' },
  },
  {
    name: 'an empty sticky header falls to the split',
    facts: { model: 'mlp', headers: { 'x-user-id': '' } },
    random: constant(0.95),
    expect: { variant: 'candidate', reason: 'split' },
  },
  // The weighted split: a point p = 100 * random picks the first variant with p < bound.
  {
    name: 'split: 0 → stable',
    facts: { model: 'mlp', headers: {} },
    random: constant(0),
    expect: { variant: 'stable', reason: 'split' },
  },
  {
    name: 'split: 0.8999 → stable',
    facts: { model: 'mlp', headers: {} },
    random: constant(0.8999),
    expect: { variant: 'stable', reason: 'split' },
  },
  {
    name: 'split: 0.9 → candidate',
    facts: { model: 'mlp', headers: {} },
    random: constant(0.9),
    expect: { variant: 'candidate', reason: 'split' },
  },
  {
    name: 'split: just below 1 → candidate',
    facts: { model: 'mlp', headers: {} },
    random: constant(1 - 2 ** -53),
    expect: { variant: 'candidate', reason: 'split' },
  },
  {
    name: 'one variant and no split',
    facts: { model: 'simple', headers: { 'x-user-id': 'u' } },
    random: constant(0.99),
    expect: { variant: 'default', reason: 'split' },
  },
  {
    name: 'zero-weight variants are never split to',
    facts: { model: 'dark', headers: {} },
    random: constant(1 - 2 ** -53),
    expect: { variant: 'stable', reason: 'split' },
  },
];

describe('route: table', () => {
  for (const c of cases) {
    test(c.name, () => {
      const d = route(P, c.facts, c.random);
      if ('error' in c.expect) {
        assert.deepEqual(d, { ok: false, error: c.expect.error });
        return;
      }
      assert.ok(d.ok, `expected a variant, got ${JSON.stringify(d)}`);
      assert.equal(d.variant.name, c.expect.variant);
      assert.equal(d.reason, c.expect.reason);
      assert.equal(d.model.name, c.facts.model);
      assert.equal(d.model, P.models.get(c.facts.model), 'the compiled model of the snapshot');
      assert.equal(d.variant, d.model.variants.get(c.expect.variant), 'the compiled variant of the model');
    });
  }

  test('an unknown model is answered 404 (GW_ERR_MODEL_NOT_FOUND)', () => {
    assert.deepEqual(route(P, { model: 'nope', headers: {} }, noRandom), {
      ok: false,
      error: 'model_not_found',
    });
    assert.equal(GW_ERRORS.GW_ERR_MODEL_NOT_FOUND.status, 404);
    assert.equal(GW_ERRORS.GW_ERR_VERSION_NOT_FOUND.status, 404);
  });

  test('the router draws at most one random number per request', () => {
    let draws = 0;
    const counting: RandomSource = () => {
      draws++;
      return 0.5;
    };
    route(P, { model: 'mlp', headers: {} }, counting);
    assert.equal(draws, 1);
    route(P, { model: 'mlp', headers: { 'x-user-id': 'someone' } }, counting);
    route(P, { model: 'mlp', headers: { 'x-infergate-variant': 'stable' } }, counting);
    route(P, { model: 'mlp', version: '1', headers: {} }, counting);
    assert.equal(draws, 1, 'sticky, route and version decisions draw nothing');
  });

  test('the decision is the same for the same inputs (pure)', () => {
    const facts: RequestFacts = { model: 'mlp', headers: {} };
    for (let i = 0; i < 100; i++) {
      const x = i / 100;
      const a = route(P, facts, constant(x));
      const b = route(P, facts, constant(x));
      assert.ok(a.ok && b.ok);
      assert.equal(a.variant, b.variant);
    }
  });
});

/** Counts variant names over `n` draws of the split (no sticky header). */
function splitCounts(p: CompiledPolicy, model: string, n: number, random: RandomSource): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const d = route(p, { model, headers: {} }, random);
    assert.ok(d.ok && d.reason === 'split');
    counts.set(d.variant.name, (counts.get(d.variant.name) ?? 0) + 1);
  }
  return counts;
}

/** Asserts `count` lies within `sigmas` standard deviations of Binomial(n, p)'s mean. */
function assertBinomial(count: number, n: number, p: number, what: string, sigmas = 4): void {
  const mean = n * p;
  const sd = Math.sqrt(n * p * (1 - p));
  assert.ok(
    Math.abs(count - mean) <= sigmas * sd,
    `${what}: ${count} of ${n}, expected ${mean} ± ${(sigmas * sd).toFixed(1)} (${sigmas} sigma)`,
  );
}

describe('route: the weighted split with a seeded source', () => {
  const N = 100_000;

  for (const seed of [1, 42, 0xdecaf]) {
    test(`90/10 over ${N} draws (seed ${seed}) within 4 sigma`, () => {
      const counts = splitCounts(P, 'mlp', N, mulberry32(seed));
      assert.deepEqual([...counts.keys()].sort(), ['candidate', 'stable']);
      assert.equal((counts.get('stable') ?? 0) + (counts.get('candidate') ?? 0), N);
      assertBinomial(counts.get('candidate') ?? 0, N, 0.1, 'candidate');
    });
  }

  test('relative weights: 9/1 is 90/10, 3/1 is 75/25', () => {
    const ninety = compilePolicy(
      'version: 1\nbackends: { a: { endpoints: [http://h:1] } }\nmodels:\n  mlp:\n    variants: { stable: { backend: a, model: m }, candidate: { backend: a, model: m } }\n    split: { stable: 9, candidate: 1 }\n',
    );
    assert.ok(ninety.ok);
    assert.deepEqual(ninety.policy.models.get('mlp')?.split.bounds, [90, 100]);
    const p = policy('{ stable: 3, candidate: 1 }');
    assertBinomial(splitCounts(p, 'mlp', N, mulberry32(7)).get('candidate') ?? 0, N, 0.25, 'candidate');
  });

  test('three ways, 50/30/20, each within 4 sigma; zero weight never drawn', () => {
    const p = compile(`
version: 1
backends: { a: { endpoints: [http://h:1] } }
models:
  m:
    variants:
      x: { backend: a, model: m }
      y: { backend: a, model: m }
      z: { backend: a, model: m }
      off: { backend: a, model: m }
    split: { x: 50, off: 0, y: 30, z: 20 }
`);
    const counts = splitCounts(p, 'm', N, mulberry32(99));
    assert.equal(counts.get('off'), undefined);
    assertBinomial(counts.get('x') ?? 0, N, 0.5, 'x');
    assertBinomial(counts.get('y') ?? 0, N, 0.3, 'y');
    assertBinomial(counts.get('z') ?? 0, N, 0.2, 'z');
  });

  test('a 100/0 split sends everything to the first variant', () => {
    const counts = splitCounts(policy('{ stable: 100, candidate: 0 }'), 'mlp', 10_000, mulberry32(3));
    assert.deepEqual([...counts], [['stable', 10_000]]);
  });
});

const USERS = Array.from({ length: 10_000 }, (_, i) => `user-${i}`);

function stickyVariant(p: CompiledPolicy, user: string): string {
  const d = route(p, { model: 'mlp', headers: { 'x-user-id': user } }, noRandom);
  assert.ok(d.ok && d.reason === 'sticky');
  return d.variant.name;
}

describe('route: sticky assignment', () => {
  test('the same user always gets the same variant', () => {
    for (const user of USERS.slice(0, 500)) {
      const first = stickyVariant(P, user);
      for (let k = 0; k < 3; k++) assert.equal(stickyVariant(P, user), first);
      // A fresh compile of the same policy (a reload, another gateway) agrees.
      assert.equal(stickyVariant(policy(), user), first);
    }
  });

  test('10,000 users split 90/10 within 4 sigma', () => {
    const candidates = USERS.filter((u) => stickyVariant(P, u) === 'candidate').length;
    assertBinomial(candidates, USERS.length, 0.1, 'sticky candidates');
  });

  test('relative weights that mean the same fractions give the same assignment', () => {
    const scaled = policy('{ stable: 9, candidate: 1 }');
    for (const user of USERS) assert.equal(stickyVariant(scaled, user), stickyVariant(P, user), user);
  });

  test('90/10 → 80/20: exactly the users with a point in [80, 90) move, stable → candidate, about 10%', () => {
    const after = policy('{ stable: 80, candidate: 20 }');
    assert.deepEqual(after.models.get('mlp')?.split.bounds, [80, 100]);
    const moved: string[] = [];
    for (const user of USERS) {
      const was = stickyVariant(P, user);
      const now = stickyVariant(after, user);
      const point = stickyPoint('mlp', user);
      const mustMove = point >= 80 && point < 90;
      if (was !== now) {
        moved.push(user);
        assert.deepEqual([was, now], ['stable', 'candidate'], `${user} moved the wrong way`);
      }
      assert.equal(was !== now, mustMove, `${user} (point ${point}) moved: ${was !== now}`);
    }
    assertBinomial(moved.length, USERS.length, 0.1, 'users moved');
  });

  test('80/20 → 90/10 moves the same users back', () => {
    const before = policy('{ stable: 80, candidate: 20 }');
    for (const user of USERS) {
      const point = stickyPoint('mlp', user);
      const moves = stickyVariant(before, user) !== stickyVariant(P, user);
      assert.equal(moves, point >= 80 && point < 90, user);
    }
  });

  test('three ways, 50/30/20 → 50/20/30: only [70, 80) moves, from y to z', () => {
    const three = (split: string) =>
      compile(`
version: 1
backends: { a: { endpoints: [http://h:1] } }
models:
  mlp:
    variants: { x: { backend: a, model: m }, y: { backend: a, model: m }, z: { backend: a, model: m } }
    split: ${split}
    sticky: { header: x-user-id }
`);
    const before = three('{ x: 50, y: 30, z: 20 }');
    const after = three('{ x: 50, y: 20, z: 30 }');
    let moved = 0;
    for (const user of USERS) {
      const was = stickyVariant(before, user);
      const now = stickyVariant(after, user);
      const point = stickyPoint('mlp', user);
      if (was !== now) {
        moved++;
        assert.deepEqual([was, now], ['y', 'z']);
      }
      assert.equal(was !== now, point >= 70 && point < 80, user);
    }
    assertBinomial(moved, USERS.length, 0.1, 'users moved');
  });

  test('a sticky user ignores the random source; a user without the header does not', () => {
    const d = route(P, { model: 'mlp', headers: {} }, constant(0.95));
    assert.ok(d.ok);
    assert.equal(d.reason, 'split');
  });
});

describe('stickyPoint', () => {
  test('pinned values: a new hash would reshuffle every user on upgrade', () => {
    assert.equal(stickyPoint('mlp', 'user-1'), 46.86102920677513);
    assert.equal(stickyPoint('mlp', 'user-2'), 73.16804022993892);
    assert.equal(stickyPoint('mlp', 'alice'), 20.29930674470961);
    assert.equal(stickyPoint('simple', 'user-1'), 80.45009248889983);
  });

  test('in [0, 100), and evenly spread over ten buckets (chi-square, 9 df)', () => {
    const buckets = new Array<number>(10).fill(0);
    for (const user of USERS) {
      const p = stickyPoint('mlp', user);
      assert.ok(p >= 0 && p < 100, `${p}`);
      buckets[Math.floor(p / 10)]! += 1;
    }
    const expected = USERS.length / 10;
    const chi2 = buckets.reduce((s, c) => s + (c - expected) ** 2 / expected, 0);
    // 9 degrees of freedom: P(chi2 > 33.7) = 0.0001.
    assert.ok(chi2 < 33.7, `chi-square ${chi2.toFixed(1)} for ${buckets.join(' ')}`);
  });

  test('depends on the model: a user is not in the same slice of every model', () => {
    let same = 0;
    for (const user of USERS) {
      if (stickyPoint('mlp', user) >= 90 === stickyPoint('simple', user) >= 90) same++;
    }
    // Independent points agree with probability 0.9² + 0.1² = 0.82.
    assertBinomial(same, USERS.length, 0.82, 'agreements');
  });

  test('the model and user are separated: ("a", "bc") differs from ("ab", "c")', () => {
    assert.notEqual(stickyPoint('a', 'bc'), stickyPoint('ab', 'c'));
  });
});
