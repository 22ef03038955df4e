// The policy compiler: what a valid policy compiles to (split bounds, defaults, endpoints, paths,
// immutability, the sha256 identity), that it never throws, and how problems are located. The
// table of invalid fixtures with their exact errors is policy-fixtures.test.ts.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import {
  type CompiledPolicy,
  type CompileResult,
  compileDocument,
  compilePolicy,
  DEFAULT_RETRIES,
  DEFAULT_TIMEOUT_MS,
  dottedPath,
  formatIssue,
  MAX_POLICY_BYTES,
} from '../../gateway/policy/compile.js';
import { REPO_ROOT } from '../helpers/backend.js';

const read = (...p: string[]) => readFileSync(path.join(REPO_ROOT, ...p), 'utf8');

function compile(text: string): CompiledPolicy {
  const result = compilePolicy(text);
  if (!result.ok) assert.fail(result.errors.map(formatIssue).join('\n'));
  return result.policy;
}

function errorsOf(result: CompileResult): string[] {
  assert.equal(result.ok, false, 'the policy is rejected');
  return result.ok ? [] : result.errors.map(formatIssue);
}

/** A one-model policy with the given model body (indented under `models.m`). */
function oneModel(body: string, head = ''): string {
  return `version: 1
${head}backends:
  a: { endpoints: [http://127.0.0.1:8001] }
  b: { endpoints: [http://127.0.0.1:8002] }
models:
  m:
${body
  .trim()
  .split('\n')
  .map((l) => `    ${l}`)
  .join('\n')}
`;
}

describe('compilePolicy: policies/default.yaml', () => {
  const p = compile(read('policies', 'default.yaml'));

  test('backends with their endpoints in policy order', () => {
    assert.deepEqual(
      [...p.backends].map(([name, b]) => [name, b.name, b.endpoints]),
      [
        ['mlp-v1', 'mlp-v1', ['http://127.0.0.1:8001', 'http://127.0.0.1:8002']],
        ['mlp-v2', 'mlp-v2', ['http://127.0.0.1:8003']],
        ['shared', 'shared', ['http://127.0.0.1:8001', 'http://127.0.0.1:8002', 'http://127.0.0.1:8003']],
      ],
    );
  });

  test('mlp: variants, a 90/10 split, sticky header, routes, version pins', () => {
    const mlp = p.models.get('mlp')!;
    assert.deepEqual([...mlp.variants.keys()], ['stable', 'candidate']);
    assert.deepEqual(
      mlp.split.variants.map((v) => v.name),
      ['stable', 'candidate'],
    );
    assert.deepEqual(mlp.split.bounds, [90, 100]);
    assert.equal(mlp.stickyHeader, 'x-user-id');
    assert.deepEqual(
      mlp.routes.map((r) => [r.headers, r.variant.name]),
      [
        [[['x-infergate-variant', 'candidate']], 'candidate'],
        [[['x-infergate-variant', 'stable']], 'stable'],
      ],
    );
    assert.deepEqual(
      [...mlp.byVersion].map(([v, variant]) => [v, variant.name]),
      [
        ['1', 'stable'],
        ['2', 'candidate'],
      ],
    );
    const candidate = mlp.variants.get('candidate')!;
    assert.equal(candidate.backend, p.backends.get('mlp-v2'), 'the compiled backend itself, not a copy');
    assert.deepEqual(
      [candidate.model, candidate.version, candidate.inferPath, candidate.metadataPath, candidate.readyPath],
      [
        'mlp',
        '2',
        '/v2/models/mlp/versions/2/infer',
        '/v2/models/mlp/versions/2',
        '/v2/models/mlp/versions/2/ready',
      ],
    );
  });

  test('defaults apply to every model', () => {
    for (const m of p.models.values()) {
      assert.equal(m.timeoutMs, 2000, m.name);
      assert.deepEqual(
        { ...m.retries },
        { attempts: 2, budgetPercent: 20, backoffMs: 25, perTryTimeoutMs: 0 },
        m.name,
      );
    }
    assert.deepEqual(p.warnings, []);
  });
});

describe('compilePolicy: values', () => {
  test('without defaults: the built-in timeout and retries', () => {
    assert.equal(DEFAULT_TIMEOUT_MS, 2000);
    assert.deepEqual(
      { ...DEFAULT_RETRIES },
      { attempts: 2, budgetPercent: 20, backoffMs: 25, perTryTimeoutMs: 0 },
    );
    const m = compile(oneModel('variants: { x: { backend: a, model: m } }')).models.get('m')!;
    assert.equal(m.timeoutMs, DEFAULT_TIMEOUT_MS);
    assert.deepEqual({ ...m.retries }, { ...DEFAULT_RETRIES });
    assert.equal(m.stickyHeader, undefined);
    assert.deepEqual(m.routes, []);
    assert.deepEqual(
      m.split.variants.map((v) => v.name),
      ['x'],
    );
    assert.deepEqual(m.split.bounds, [100]);
  });

  test('retries merge key by key: model over defaults over built-in', () => {
    const p = compile(
      oneModel(
        'variants: { x: { backend: a, model: m } }\ntimeoutMs: 750\nretries: { attempts: 0 }',
        'defaults: { timeoutMs: 1500, retries: { budgetPercent: 5 } }\n',
      ),
    );
    const m = p.models.get('m')!;
    assert.equal(m.timeoutMs, 750);
    assert.deepEqual({ ...m.retries }, { attempts: 0, budgetPercent: 5, backoffMs: 25, perTryTimeoutMs: 0 });
  });

  const splits: { split: string; variants: string[]; bounds: number[] }[] = [
    { split: '{ x: 90, y: 10 }', variants: ['x', 'y'], bounds: [90, 100] },
    { split: '{ y: 10, x: 90 }', variants: ['y', 'x'], bounds: [10, 100] },
    { split: '{ x: 9, y: 1 }', variants: ['x', 'y'], bounds: [90, 100] },
    { split: '{ x: 0.5, y: 0.5 }', variants: ['x', 'y'], bounds: [50, 100] },
    { split: '{ x: 3, y: 1 }', variants: ['x', 'y'], bounds: [75, 100] },
    { split: '{ x: 0, y: 7 }', variants: ['y'], bounds: [100] },
    { split: '{ x: 5 }', variants: ['x'], bounds: [100] },
    { split: '{ x: 1, y: 1, z: 1 }', variants: ['x', 'y', 'z'], bounds: [100 / 3, 200 / 3, 100] },
    { split: '{ x: 50, z: 0, y: 30 }', variants: ['x', 'y'], bounds: [62.5, 100] },
  ];
  for (const c of splits) {
    test(`split ${c.split}: ${c.variants.join('/')} with bounds ${c.bounds.map((b) => b.toFixed(2)).join(', ')}`, () => {
      const m = compile(
        oneModel(
          `variants: { x: { backend: a, model: m }, y: { backend: b, model: m }, z: { backend: b, model: m } }\nsplit: ${c.split}`,
        ),
      ).models.get('m')!;
      assert.deepEqual(
        m.split.variants.map((v) => v.name),
        c.variants,
      );
      assert.equal(m.split.bounds.length, c.bounds.length);
      m.split.bounds.forEach((b, i) => {
        assert.ok(Math.abs(b - c.bounds[i]!) < 1e-9, `bound ${i}: ${b}`);
      });
      assert.equal(m.split.bounds.at(-1), 100, 'the last bound is exactly 100');
    });
  }

  test('endpoints are normalised to origins', () => {
    const p = compile(`version: 1
backends:
  a: { endpoints: ["http://127.0.0.1:8001/", "http://LOCALHOST:8002", "https://h.example:443", "http://[::1]:80", "http://h.example:8080"] }
models:
  m: { variants: { x: { backend: a, model: m } } }
`);
    assert.deepEqual(p.backends.get('a')!.endpoints, [
      'http://127.0.0.1:8001',
      'http://localhost:8002',
      'https://h.example',
      'http://[::1]',
      'http://h.example:8080',
    ]);
  });

  test('header names are lower-cased; values are kept as written', () => {
    const m = compile(
      oneModel(`variants: { x: { backend: a, model: m } }
sticky: { header: X-User-ID }
routes:
  - { match: { headers: { X-Team: ML, x-Env: Staging } }, variant: x }`),
    ).models.get('m')!;
    assert.equal(m.stickyHeader, 'x-user-id');
    assert.deepEqual(m.routes[0]!.headers, [
      ['x-team', 'ML'],
      ['x-env', 'Staging'],
    ]);
  });

  test('versions: an integer is a version; no version means no /versions/ path; the first variant of a version pins it', () => {
    const m = compile(
      oneModel(`variants:
  old: { backend: a, model: m, version: 1 }
  free: { backend: a, model: "m.large" }
  also-one: { backend: b, model: m, version: "1" }
split: { old: 1, free: 1, also-one: 1 }`),
    ).models.get('m')!;
    assert.equal(m.variants.get('old')!.version, '1');
    assert.equal(m.variants.get('old')!.inferPath, '/v2/models/m/versions/1/infer');
    assert.equal(m.variants.get('free')!.version, undefined);
    assert.equal(m.variants.get('free')!.inferPath, '/v2/models/m.large/infer');
    assert.deepEqual(
      [...m.byVersion].map(([v, variant]) => [v, variant.name]),
      [['1', 'old']],
    );
  });

  test('model names on the backend are URL-encoded in upstream paths', () => {
    const v = compile(oneModel('variants: { x: { backend: a, model: "m%20?#" } }'))
      .models.get('m')!
      .variants.get('x')!;
    assert.equal(v.inferPath, '/v2/models/m%2520%3F%23/infer');
  });

  test('the snapshot is frozen all the way down to what requests read', () => {
    const p = compile(read('policies', 'default.yaml'));
    const mlp = p.models.get('mlp')!;
    for (const [what, o] of [
      ['policy', p],
      ['warnings', p.warnings],
      ['backend', p.backends.get('mlp-v1')],
      ['endpoints', p.backends.get('mlp-v1')!.endpoints],
      ['model', mlp],
      ['split', mlp.split],
      ['routes', mlp.routes],
      ['route', mlp.routes[0]],
      ['retries', mlp.retries],
      ['variant', mlp.variants.get('stable')],
    ] as const) {
      assert.ok(Object.isFrozen(o), `${what} is frozen`);
    }
  });

  test('no warnings for shadow and canary, which this version acts on; their sections compiled', () => {
    const p = compile(read('test', 'fixtures', 'policies', 'valid', 'full.yaml'));
    assert.deepEqual(p.warnings, []);
    const mlp = p.models.get('mlp');
    assert.equal(mlp?.shadow?.variant.name, 'candidate');
    assert.deepEqual([...(mlp?.shadow?.classifications ?? [])], ['y']);
    assert.equal(mlp?.shadow?.noiseFloorPercent, 5);
    assert.equal(mlp?.canary?.baseline.name, 'stable');
    assert.deepEqual(mlp?.canary?.steps, [5, 25, 50, 100]);
    assert.equal(mlp?.canary?.confidence, 0.95);
  });
});

describe('compilePolicy: the sha256 identity', () => {
  const text = read('policies', 'default.yaml');
  const sha = compile(text).sha256;

  test('64 hex digits, the same for the same text', () => {
    assert.match(sha, /^[0-9a-f]{64}$/);
    assert.equal(compile(text).sha256, sha);
  });

  test('comments, blank lines and flow vs block style do not change it', () => {
    const restyled = text
      .split('\n')
      .map((l) => l.replace(/\s+#.*$/, ''))
      .filter((l) => !/^\s*(#.*)?$/.test(l))
      .join('\n');
    assert.notEqual(restyled, text);
    assert.equal(compile(restyled).sha256, sha);
  });

  test('a weight change changes it', () => {
    const moved = text.replace(
      'split: { stable: 90, candidate: 10 }',
      'split: { stable: 80, candidate: 20 }',
    );
    assert.notEqual(moved, text);
    assert.notEqual(compile(moved).sha256, sha);
  });
});

describe('compilePolicy: never throws, always locates the problem', () => {
  const garbage: [string, string, string[]][] = [
    ['an empty text', '', ['(root): the policy is empty']],
    ['only a comment', '# nothing here\n', ['(root): the policy is empty']],
    ['a scalar', 'hello', ['(root): the policy must be a mapping']],
    ['a number', '42', ['(root): the policy must be a mapping']],
    ['a sequence', '[1, 2]', ['(root): expected object']],
    ['NUL bytes', '\u0000\u0001', ['(root): the policy must be a mapping']],
    [
      'tabs as indentation',
      'version: 1\n\tbackends: x',
      ['(yaml line 2, column 1): Tabs are not allowed as indentation'],
    ],
    [
      'two documents',
      'version: 1\n---\nversion: 1\n',
      ['(yaml line 2, column 1): Source contains multiple documents; please use YAML.parseAllDocuments()'],
    ],
    [
      'an alias bomb',
      'a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n',
      ['(root): Excessive alias count indicates a resource exhaustion attack'],
    ],
  ];
  for (const [what, text, expected] of garbage) {
    test(what, () => {
      assert.deepEqual(errorsOf(compilePolicy(text)), expected);
    });
  }

  test('an unclosed flow map: the line and column of the problem', () => {
    const errors = errorsOf(
      compilePolicy('version: 1\nbackends:\n  a: { endpoints: [http://h:1]\nmodels:\n  m: {}\n'),
    );
    assert.equal(errors.length, 1);
    assert.match(errors[0]!, /^\(yaml line 4, column 1\): \S/);
  });

  test('deep nesting is an error, not a crash', () => {
    const errors = errorsOf(compilePolicy(`${'['.repeat(5000)}${']'.repeat(5000)}`));
    assert.ok(errors.length >= 1);
    for (const e of errors) assert.match(e, /^\((yaml line \d+, column \d+|root)\): /);
  });

  test('compileDocument takes any value', () => {
    for (const v of [null, undefined, 0, 'x', [], true]) {
      assert.deepEqual(errorsOf(compileDocument(v)), ['(root): expected object'], String(v));
    }
    assert.deepEqual(errorsOf(compileDocument({})), [
      'version: required',
      'backends: required',
      'models: required',
    ]);
  });

  test('the size limit counts bytes, not characters', () => {
    assert.equal(MAX_POLICY_BYTES, 1 << 20);
    const base = read('policies', 'default.yaml');
    const pad = (bytes: number, ch: string) =>
      `${base}#${ch.repeat(Math.floor((bytes - Buffer.byteLength(base) - 1) / Buffer.byteLength(ch)))}`;
    const exact = pad(MAX_POLICY_BYTES, 'x');
    assert.equal(Buffer.byteLength(exact), MAX_POLICY_BYTES);
    assert.ok(compilePolicy(exact).ok, 'exactly the limit is accepted');
    assert.deepEqual(errorsOf(compilePolicy(`${exact}x`)), [
      '(root): the policy is larger than 1048576 bytes',
    ]);
    const wide = pad(MAX_POLICY_BYTES + 3, 'é'); // 2 bytes each: under the limit in characters
    assert.ok(wide.length < MAX_POLICY_BYTES);
    assert.deepEqual(errorsOf(compilePolicy(wide)), ['(root): the policy is larger than 1048576 bytes']);
  });

  test('at most 100 schema errors are reported', () => {
    const models = Array.from(
      { length: 150 },
      (_, i) => `  m${i}: { variants: { x: { backend: a, model: m } }, bogus: 1 }`,
    );
    const text = `version: 1\nbackends:\n  a: { endpoints: [http://h:1] }\nmodels:\n${models.join('\n')}\n`;
    const errors = errorsOf(compilePolicy(text));
    assert.equal(errors.length, 100);
    assert.equal(errors[0], 'models.m0.bogus: unknown key');
  });

  test('every cross-reference error of every model, in policy order', () => {
    const errors = errorsOf(
      compilePolicy(`version: 1
backends:
  a: { endpoints: [http://h:1] }
models:
  one: { variants: { x: { backend: nope, model: m } } }
  two: { variants: { x: { backend: a, model: m } }, split: { y: 1 } }
  three: { variants: { x: { backend: a, model: m } }, routes: [{ match: { headers: { h: v } }, variant: z }] }
`),
    );
    assert.deepEqual(errors, [
      "models.one.variants.x.backend: unknown backend 'nope'",
      "models.two.split.y: unknown variant 'y'",
      "models.three.routes[0].variant: unknown variant 'z'",
    ]);
  });
});

describe('dottedPath', () => {
  const table: [string | (string | number)[], string][] = [
    ['', '(root)'],
    ['/models/mlp/split/canary', 'models.mlp.split.canary'],
    ['/a/0/b', 'a[0].b'],
    ['/models/m/routes/12/match/headers', 'models.m.routes[12].match.headers'],
    ['/models/my.model', 'models["my.model"]'],
    ['/backends/pool a', 'backends["pool a"]'],
    ['/a~1b/c~0d', '["a/b"]["c~d"]'],
    ['/models/text-direction/variants/_x', 'models.text-direction.variants._x'],
    [['models', 'm', 'routes', 0, 'variant'], 'models.m.routes[0].variant'],
    [['models', 'a.b'], 'models["a.b"]'],
  ];
  for (const [input, expected] of table) {
    test(`${JSON.stringify(input)} → ${expected}`, () => {
      assert.equal(dottedPath(input), expected);
    });
  }
});

describe('compilePolicy: regressions found by review', () => {
  // Names such as 'toString' and 'constructor' match the name pattern. The compiler asks
  // `vname in def.variants`, which sees Object.prototype, so these names count as declared.
  const protoCases: [string, string, string][] = [
    [
      'a route to an undeclared variant named toString',
      'routes: [{ match: { headers: { x-v: "1" } }, variant: toString }]',
      "models.m.routes[0].variant: unknown variant 'toString'",
    ],
    [
      'a split weight for an undeclared variant named constructor',
      'split: { x: 1, constructor: 1 }',
      "models.m.split.constructor: unknown variant 'constructor'",
    ],
    [
      'a shadow of an undeclared variant named hasOwnProperty',
      'shadow: { variant: hasOwnProperty, percent: 10 }',
      "models.m.shadow.variant: unknown variant 'hasOwnProperty'",
    ],
  ];
  for (const [what, line, expected] of protoCases) {
    test(`${what} is rejected`, () => {
      const result = compilePolicy(oneModel(`variants: { x: { backend: a, model: m } }\n${line}`));
      assert.ok(errorsOf(result).includes(expected), JSON.stringify(result.ok ? 'accepted' : result.errors));
    });
  }

  test('cross-reference paths quote dotted names the way schema paths do', () => {
    const text = `version: 1
backends:
  a: { endpoints: [http://h:1] }
models:
  mlp.v2:
    variants:
      v1.0: { backend: nope, model: m }
      x: { backend: a, model: m }
    split: { x: 1, canary: 1 }
`;
    assert.deepEqual(errorsOf(compilePolicy(text)), [
      `models["mlp.v2"].variants["v1.0"].backend: unknown backend 'nope'`,
      `models["mlp.v2"].split.canary: unknown variant 'canary'`,
    ]);
  });

  test('huge weights keep their proportions (1e308 / 1e308 is 50/50)', () => {
    const result = compilePolicy(
      oneModel(
        'variants: { x: { backend: a, model: m }, y: { backend: b, model: m } }\nsplit: { x: 1e308, y: 1e308 }',
      ),
    );
    if (!result.ok) return; // rejecting such weights is also a fix
    assert.deepEqual(result.policy.models.get('m')!.split.bounds, [50, 100]);
  });

  test('a missing required name is reported as required', () => {
    const errors = errorsOf(
      compilePolicy(oneModel('variants: { x: { model: m }, y: { backend: a } }\nsplit: { x: 1, y: 1 }')),
    );
    assert.deepEqual(errors, [
      'models.m.variants.x.backend: required',
      'models.m.variants.y.model: required',
    ]);
  });
});

describe('compilePolicy: values the schema lets through but the runtime could not use', () => {
  test('a model name with a lone surrogate is an error, not a crash of the reload', () => {
    const result = compilePolicy(oneModel('variants: { x: { backend: a, model: "x\\uD800" } }'));
    assert.deepEqual(errorsOf(result), ['models.m.variants.x.model: is not well-formed Unicode']);
  });

  test("a breaker reset timeout past Node's timer range is an error", () => {
    const result = compilePolicy(
      oneModel(
        'variants: { x: { backend: a, model: m } }',
        'defaults: { circuitBreaker: { resetTimeoutMs: 3000000000 } }\n',
      ),
    );
    assert.deepEqual(errorsOf(result), [
      'defaults.circuitBreaker.resetTimeoutMs: expected integer to be less or equal to 3600000',
    ]);
  });

  test('an integer version beyond 2^53 is an error (it would pin another version)', () => {
    const result = compilePolicy(
      oneModel('variants: { x: { backend: a, model: m, version: 100000000000000000000000 } }'),
    );
    assert.deepEqual(errorsOf(result), ['models.m.variants.x.version: must be a version number such as "1"']);
  });
});
