// The walls of ARCHITECTURE.md, held from the import graph of the product code (gateway/,
// backend/, common/, cli/, models/): the network-free core, the two tiers apart, configuration
// read only by cli/, no import cycles. The checker is a pure function over a graph; it is shown
// to fail on small bad graphs, and its scanner on tricky sources, before it is trusted on the tree.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { REPO_ROOT, removeTempDirs, tempDir } from '../helpers/backend.js';
import {
  checkWalls,
  type ImportEdge,
  type ImportGraph,
  isNetworkFree,
  type ModuleNode,
  packageName,
  readImportGraph,
  resolveFile,
  scanSource,
  type Wall,
} from '../helpers/walls.js';

const messages = (graph: ImportGraph, wall?: Wall) =>
  checkWalls(graph)
    .filter((v) => wall === undefined || v.wall === wall)
    .map((v) => v.message);

describe('the walls hold in this tree', () => {
  const graph = readImportGraph(REPO_ROOT);

  test('the scanner sees the tree: every product folder, file edges and package edges', () => {
    for (const dir of ['gateway', 'backend', 'common', 'cli', 'models'])
      assert.ok(
        [...graph.keys()].some((f) => f.startsWith(`${dir}/`)),
        `files under ${dir}/`,
      );
    const router = graph.get('gateway/router.ts');
    assert.ok(router, 'gateway/router.ts is scanned');
    assert.ok(router.imports.some((e) => e.target === 'gateway/policy/compile.ts'));
    const cliMain = graph.get('cli/main.ts');
    assert.ok(
      cliMain?.processReads.some((r) => r.token === 'process.argv'),
      'cli/main.ts reads argv',
    );
    const packages = new Set([...graph.values()].flatMap((n) => n.imports.map((e) => e.target)));
    assert.ok(packages.has('fastify'), 'some product file imports fastify (the scanner sees packages)');
  });

  const walls: [Wall, string][] = [
    [
      'network-free core',
      'the router, the policy compiler and the admission stages import neither fastify, undici nor ioredis',
    ],
    ['tiers apart', 'gateway/ and backend/ never import each other; common/ imports neither'],
    ['configuration from cli', 'only cli/ reads process.argv and process.env'],
    ['no cycles', 'no import cycles among product files'],
    ['resolvable', 'every relative import resolves to a file (so the walls above see every edge)'],
  ];
  for (const [wall, title] of walls) {
    test(title, () => {
      const broken = messages(graph, wall);
      assert.deepEqual(broken, [], `wall '${wall}' broken:\n  ${broken.join('\n  ')}`);
    });
  }
});

// ---------------------------------------------------------------------------------------------
// The checker on synthetic graphs

type Spec = string | { to: string; typeOnly?: boolean };

/** A graph from `file → imports`; a target with a source extension is a file, else a package. */
function graphOf(
  files: Record<string, Spec[]>,
  reads: Record<string, ('process.env' | 'process.argv')[]> = {},
): ImportGraph {
  const g = new Map<string, ModuleNode>();
  for (const [file, specs] of Object.entries(files)) {
    const imports = specs.map((s, i): ImportEdge => {
      const { to, typeOnly = false } = typeof s === 'string' ? { to: s } : s;
      const kind = to === '?' ? 'unresolved' : /\.[jt]s$/.test(to) ? 'file' : 'package';
      return { specifier: kind === 'file' ? `./${to}` : to, target: to, kind, typeOnly, line: i + 1 };
    });
    g.set(file, { imports, processReads: (reads[file] ?? []).map((token) => ({ token, line: 7 })) });
  }
  return g;
}

describe('checkWalls on bad graphs', () => {
  test('a clean graph breaks nothing', () => {
    const g = graphOf({
      'gateway/router.ts': ['gateway/policy/compile.ts'],
      'gateway/policy/compile.ts': ['yaml', 'common/errors.ts'],
      'gateway/server.ts': ['fastify', 'undici', 'gateway/router.ts'],
      'common/errors.ts': [],
      'cli/main.ts': ['gateway/server.ts', 'backend/server.ts'],
      'backend/server.ts': ['fastify', 'common/errors.ts'],
    });
    assert.deepEqual(messages(g), []);
  });

  test('the router importing fastify directly', () => {
    const g = graphOf({ 'gateway/router.ts': ['fastify'] });
    assert.deepEqual(messages(g), [
      "gateway/router.ts imports 'fastify' (gateway/router.ts: 'fastify' at line 1)",
    ]);
  });

  test('the compiler reaching undici through another repo file names the chain', () => {
    const g = graphOf({
      'gateway/policy/compile.ts': ['gateway/policy/compile-model.ts'],
      'gateway/policy/compile-model.ts': ['gateway/upstream/pool.ts'],
      'gateway/upstream/pool.ts': ['undici'],
    });
    assert.deepEqual(messages(g, 'network-free core'), [
      "gateway/policy/compile.ts imports 'undici' through gateway/policy/compile-model.ts -> gateway/upstream/pool.ts (gateway/upstream/pool.ts: 'undici' at line 1)",
      "gateway/policy/compile-model.ts imports 'undici' through gateway/upstream/pool.ts (gateway/upstream/pool.ts: 'undici' at line 1)",
    ]);
  });

  test('an admission stage importing ioredis, and a scoped fastify package', () => {
    const g = graphOf({
      'gateway/admission/rate-limit.ts': ['ioredis'],
      'gateway/admission/auth.ts': ['@fastify/auth'],
    });
    assert.deepEqual(messages(g, 'network-free core').length, 2);
    assert.match(messages(g)[0]!, /^gateway\/admission\/rate-limit\.ts imports 'ioredis'/);
    assert.match(messages(g)[1]!, /^gateway\/admission\/auth\.ts imports '@fastify\/auth'/);
  });

  test('a type-only import of fastify counts; a type-only file edge loads nothing and is not followed', () => {
    const direct = graphOf({ 'gateway/router.ts': [{ to: 'fastify', typeOnly: true }] });
    assert.deepEqual(messages(direct), [
      "gateway/router.ts imports 'fastify' (gateway/router.ts: 'fastify' (type only) at line 1)",
    ]);
    const viaTypes = graphOf({
      'gateway/policy/runtime.ts': [{ to: 'gateway/policy/source.ts', typeOnly: true }],
      'gateway/policy/source.ts': ['ioredis'],
    });
    assert.deepEqual(messages(viaTypes), []);
  });

  test('policy sources may do I/O; the rest of gateway/policy may not', () => {
    assert.equal(isNetworkFree('gateway/policy/source.ts'), false);
    assert.equal(isNetworkFree('gateway/policy/source-redis.ts'), false);
    assert.equal(isNetworkFree('gateway/policy/sources/redis.ts'), false);
    assert.equal(isNetworkFree('gateway/policy/runtime.ts'), true);
    assert.equal(isNetworkFree('gateway/policy/schema-model.ts'), true);
    assert.equal(isNetworkFree('gateway/router.ts'), true);
    assert.equal(isNetworkFree('gateway/admission/auth.ts'), true);
    assert.equal(isNetworkFree('gateway/server.ts'), false);
  });

  test('gateway/ and backend/ importing each other, common/ importing either', () => {
    const g = graphOf({
      'gateway/server.ts': ['backend/codec.ts'],
      'backend/server.ts': [{ to: 'gateway/errors.ts', typeOnly: true }],
      'common/http.ts': ['gateway/context.ts', 'backend/model.ts'],
      'cli/up.ts': ['gateway/server.ts', 'backend/server.ts'],
    });
    assert.deepEqual(messages(g, 'tiers apart'), [
      "gateway/server.ts imports backend/codec.ts ('./backend/codec.ts' at line 1): gateway/ must not import backend/",
      "backend/server.ts imports gateway/errors.ts ('./gateway/errors.ts' (type only) at line 1): backend/ must not import gateway/",
      "common/http.ts imports gateway/context.ts ('./gateway/context.ts' at line 1): common/ must not import gateway/",
      "common/http.ts imports backend/model.ts ('./backend/model.ts' at line 2): common/ must not import backend/",
    ]);
  });

  test('process.env and process.argv outside cli/', () => {
    const g = graphOf(
      { 'gateway/app.ts': [], 'common/logging.ts': [], 'cli/args.ts': [], 'load/bench.ts': [] },
      {
        'gateway/app.ts': ['process.env'],
        'common/logging.ts': ['process.argv'],
        'cli/args.ts': ['process.env', 'process.argv'],
        'load/bench.ts': ['process.env'],
      },
    );
    assert.deepEqual(messages(g), [
      'gateway/app.ts reads process.env at line 7: only cli/ does; pass the value in',
      'common/logging.ts reads process.argv at line 7: only cli/ does; pass the value in',
    ]);
  });

  test('an import cycle is reported once, as its path', () => {
    const g = graphOf({
      'gateway/a.ts': ['gateway/b.ts'],
      'gateway/b.ts': [{ to: 'gateway/c.ts', typeOnly: true }],
      'gateway/c.ts': ['gateway/a.ts', 'gateway/d.ts'],
      'gateway/d.ts': [],
      'common/self.ts': ['common/self.ts'],
    });
    assert.deepEqual(messages(g, 'no cycles'), [
      "import cycle: common/self.ts ('./common/self.ts' at line 1) -> common/self.ts",
      "import cycle: gateway/a.ts ('./gateway/b.ts' at line 1) -> gateway/b.ts ('./gateway/c.ts' (type only) at line 1) -> gateway/c.ts ('./gateway/a.ts' at line 1) -> gateway/a.ts",
    ]);
  });

  test('an import the scanner cannot follow is reported', () => {
    const g = graphOf({ 'backend/model.ts': ['?'] });
    assert.deepEqual(messages(g), [
      "backend/model.ts: '?' at line 1 resolves to no file, so the walls cannot follow it",
    ]);
  });
});

// ---------------------------------------------------------------------------------------------
// The scanner

describe('scanSource', () => {
  test('every import form, with type-only marked; comments and strings do not count', () => {
    const { imports, reads } = scanSource(
      [
        "import { a } from './a.js';",
        "import type { B } from 'fastify';",
        "import { type C } from './c.js';",
        "export { d } from './d.js';",
        "export type { E } from './e.js';",
        "export * from './f.js';",
        "import './side-effect.js';",
        "const g = await import('./g.js');",
        'const h = await import(name);',
        "// import { x } from 'undici'; process.env.X",
        "/* export * from 'ioredis'; process.argv */",
        'const s = "import(\'ioredis\') process.env";',
        "type T = import('./t.js').T;",
      ].join('\n'),
      'gateway/x.ts',
    );
    assert.deepEqual(
      imports.map((e) => [e.specifier, e.typeOnly, e.line]),
      [
        ['./a.js', false, 1],
        ['fastify', true, 2],
        ['./c.js', false, 3],
        ['./d.js', false, 4],
        ['./e.js', true, 5],
        ['./f.js', false, 6],
        ['./side-effect.js', false, 7],
        ['./g.js', false, 8],
        ['<computed: name>', false, 9],
        ['./t.js', true, 13],
      ],
    );
    assert.deepEqual(reads, []);
  });

  test('process.env and process.argv in their usual spellings', () => {
    const { reads } = scanSource(
      [
        'const a = process.env.PORT;',
        "const b = process['argv'];",
        'const { env } = process;',
        'const c = globalThis.process.env;',
        "import { argv } from 'node:process';",
        'const d = process.platform;',
        'const e = myprocess.env;',
      ].join('\n'),
      'common/x.js',
    );
    assert.deepEqual(
      reads.map((r) => [r.token, r.line]),
      [
        ['process.env', 1],
        ['process.argv', 2],
        ['process.env', 3],
        ['process.env', 4],
        ['process.argv', 5],
      ],
    );
  });

  test('resolution: NodeNext .js to .ts, packages by name', () => {
    const files = new Set(['gateway/policy/compile.ts', 'backend/session-core.js', 'package.json']);
    const exists = (f: string) => files.has(f);
    assert.equal(
      resolveFile('gateway/router.ts', './policy/compile.js', exists),
      'gateway/policy/compile.ts',
    );
    assert.equal(resolveFile('backend/session.ts', './session-core.js', exists), 'backend/session-core.js');
    assert.equal(resolveFile('common/version.ts', '../package.json', exists), 'package.json');
    assert.equal(resolveFile('gateway/router.ts', './missing.js', exists), undefined);
    assert.equal(
      resolveFile('gateway/router.ts', '../../outside.js', () => true),
      undefined,
    );
    assert.equal(packageName('fastify/types/request'), 'fastify');
    assert.equal(packageName('@sinclair/typebox/value'), '@sinclair/typebox');
    assert.equal(packageName('node:fs/promises'), 'node:fs');
  });

  test('readImportGraph on a small tree on disk: a wall broken through a file that is not product code', async () => {
    const root = await tempDir('infergate-walls-');
    const files: Record<string, string> = {
      'gateway/router.ts': "import { pick } from '../load/pick.js';\nexport const route = pick;\n",
      'load/pick.ts': "import { request } from 'undici';\nexport const pick = request;\n",
      'backend/session.ts': 'export const threads = Number(process.env.THREADS);\n',
      'models/repository/generated.ts': "import 'ioredis';\n",
    };
    for (const [file, text] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
      writeFileSync(path.join(root, file), text);
    }
    const graph = readImportGraph(root);
    assert.deepEqual([...graph.keys()].sort(), ['backend/session.ts', 'gateway/router.ts', 'load/pick.ts']);
    assert.deepEqual(messages(graph), [
      "gateway/router.ts imports 'undici' through load/pick.ts (load/pick.ts: 'undici' at line 1)",
      'backend/session.ts reads process.env at line 1: only cli/ does; pass the value in',
    ]);
  });
});

after(removeTempDirs);
