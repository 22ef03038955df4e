// The walls of ARCHITECTURE.md ("Walls that keep the house easy to change") as a pure check over
// an import graph, and the scanner that reads that graph from the repository with the TypeScript
// parser (so imports and `process.env` inside comments or strings do not count).
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

/** The product code: what the walls hold to. */
export const PRODUCT_DIRS = ['gateway', 'backend', 'common', 'cli', 'models'] as const;

/** Packages that the router, the policy compiler and the admission stages must not load. */
export const NETWORK_PACKAGES = ['fastify', 'undici', 'ioredis'] as const;

export interface ImportEdge {
  /** As written in the source. */
  readonly specifier: string;
  /** A repo-relative path (`file`), a package name (`package`), or the specifier (`unresolved`). */
  readonly target: string;
  readonly kind: 'file' | 'package' | 'unresolved';
  /** `import type` / `export type ... from`: erased, loads nothing at run time. */
  readonly typeOnly: boolean;
  readonly line: number;
}

export interface ProcessRead {
  readonly token: 'process.env' | 'process.argv';
  readonly line: number;
}

export interface ModuleNode {
  readonly imports: readonly ImportEdge[];
  readonly processReads: readonly ProcessRead[];
}

/** Repo-relative path (forward slashes) → what the file imports and reads. */
export type ImportGraph = ReadonlyMap<string, ModuleNode>;

export type Wall =
  | 'network-free core'
  | 'tiers apart'
  | 'configuration from cli'
  | 'no cycles'
  | 'resolvable';

export interface Violation {
  readonly wall: Wall;
  readonly file: string;
  readonly message: string;
}

const under = (file: string, dir: string) => file.startsWith(`${dir}/`);
const isProduct = (file: string) => PRODUCT_DIRS.some((d) => under(file, d));

/** PolicySource implementations (file, Redis) may do I/O: `source.ts`, `source-*.ts`, `sources/`. */
const isPolicySource = (file: string) =>
  /^gateway\/policy\/(?:sources?\/|source(?:[-.][^/]*)?\.[cm]?[jt]s$)/.test(file);

/** The router, the policy compiler (all of gateway/policy but the sources), the admission stages. */
export function isNetworkFree(file: string): boolean {
  return (
    file === 'gateway/router.ts' ||
    (under(file, 'gateway/policy') && !isPolicySource(file)) ||
    under(file, 'gateway/admission')
  );
}

const isNetworkPackage = (pkg: string) => NETWORK_PACKAGES.some((n) => pkg === n || pkg.startsWith(`@${n}/`));

const edgeText = (e: ImportEdge) => `'${e.specifier}'${e.typeOnly ? ' (type only)' : ''} at line ${e.line}`;

/** Every wall the graph breaks, one violation per offending file and import. Pure. */
export function checkWalls(graph: ImportGraph): Violation[] {
  return [
    ...networkFreeCore(graph),
    ...tiersApart(graph),
    ...configFromCli(graph),
    ...cycles(graph),
    ...unresolved(graph),
  ];
}

function networkFreeCore(graph: ImportGraph): Violation[] {
  const out: Violation[] = [];
  for (const file of graph.keys()) {
    if (!isNetworkFree(file)) continue;
    // Breadth first over what loads at run time, so each report names the shortest chain.
    const via = new Map<string, string[]>([[file, [file]]]);
    const queue = [file];
    for (let current = queue.shift(); current !== undefined; current = queue.shift()) {
      const chain = via.get(current)!;
      for (const e of graph.get(current)?.imports ?? []) {
        if (e.kind === 'package' && isNetworkPackage(e.target) && (current === file || !e.typeOnly)) {
          const through = chain.length > 1 ? ` through ${chain.slice(1).join(' -> ')}` : '';
          out.push({
            wall: 'network-free core',
            file,
            message: `${file} imports '${e.target}'${through} (${current}: ${edgeText(e)})`,
          });
        } else if (e.kind === 'file' && !e.typeOnly && !via.has(e.target)) {
          via.set(e.target, [...chain, e.target]);
          queue.push(e.target);
        }
      }
    }
  }
  return out;
}

function tiersApart(graph: ImportGraph): Violation[] {
  const out: Violation[] = [];
  const forbidden = (file: string): string[] =>
    under(file, 'gateway')
      ? ['backend']
      : under(file, 'backend')
        ? ['gateway']
        : under(file, 'common')
          ? ['gateway', 'backend']
          : [];
  for (const [file, node] of graph) {
    for (const e of node.imports) {
      const dir = forbidden(file).find((d) => e.kind === 'file' && under(e.target, d));
      if (dir !== undefined) {
        out.push({
          wall: 'tiers apart',
          file,
          message: `${file} imports ${e.target} (${edgeText(e)}): ${file.split('/')[0]}/ must not import ${dir}/`,
        });
      }
    }
  }
  return out;
}

function configFromCli(graph: ImportGraph): Violation[] {
  const out: Violation[] = [];
  for (const [file, node] of graph) {
    if (!isProduct(file) || under(file, 'cli')) continue;
    for (const r of node.processReads) {
      out.push({
        wall: 'configuration from cli',
        file,
        message: `${file} reads ${r.token} at line ${r.line}: only cli/ does; pass the value in`,
      });
    }
  }
  return out;
}

/** Each strongly connected set of product files (Tarjan), reported as one cycle through it. */
function cycles(graph: ImportGraph): Violation[] {
  const next = (f: string) =>
    (graph.get(f)?.imports ?? []).filter(
      (e) => e.kind === 'file' && graph.has(e.target) && isProduct(e.target),
    );
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: Violation[] = [];
  const visit = (f: string) => {
    index.set(f, index.size);
    low.set(f, index.get(f)!);
    stack.push(f);
    onStack.add(f);
    for (const { target } of next(f)) {
      if (!index.has(target)) {
        visit(target);
        low.set(f, Math.min(low.get(f)!, low.get(target)!));
      } else if (onStack.has(target)) {
        low.set(f, Math.min(low.get(f)!, index.get(target)!));
      }
    }
    if (low.get(f) !== index.get(f)) return;
    const members = new Set<string>();
    for (let m = stack.pop(); m !== undefined; m = stack.pop()) {
      onStack.delete(m);
      members.add(m);
      if (m === f) break;
    }
    const start = [...members].sort()[0]!;
    const loop = shortestLoop(start, members, next);
    if (loop !== undefined) out.push({ wall: 'no cycles', file: start, message: loop });
  };
  for (const f of [...graph.keys()].filter(isProduct).sort()) if (!index.has(f)) visit(f);
  return out;
}

/** `a.ts -> b.ts -> a.ts`, the shortest way from `start` back to itself inside `members`. */
function shortestLoop(
  start: string,
  members: ReadonlySet<string>,
  next: (f: string) => ImportEdge[],
): string | undefined {
  const prev = new Map<string, { from: string; edge: ImportEdge }>();
  const queue = [start];
  for (let f = queue.shift(); f !== undefined; f = queue.shift()) {
    for (const e of next(f)) {
      if (!members.has(e.target)) continue;
      if (e.target === start) {
        const steps = [`${f} (${edgeText(e)})`];
        for (let at = f; at !== start; at = prev.get(at)!.from) {
          const p = prev.get(at)!;
          steps.unshift(`${p.from} (${edgeText(p.edge)})`);
        }
        return `import cycle: ${steps.join(' -> ')} -> ${start}`;
      }
      if (!prev.has(e.target)) {
        prev.set(e.target, { from: f, edge: e });
        queue.push(e.target);
      }
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Reading the graph

/** The imports and `process.env` / `process.argv` reads of one source text. */
export function scanSource(text: string, fileName: string): { imports: ImportEdge[]; reads: ProcessRead[] } {
  const kind = /\.[cm]?js$/.test(fileName) ? ts.ScriptKind.JS : ts.ScriptKind.TS;
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, kind);
  const lineOf = (n: ts.Node) => sf.getLineAndCharacterOfPosition(n.getStart(sf)).line + 1;
  const imports: ImportEdge[] = [];
  const reads: ProcessRead[] = [];
  const addImport = (spec: ts.Expression | undefined, typeOnly: boolean, at: ts.Node) => {
    if (spec === undefined) return;
    const specifier = ts.isStringLiteralLike(spec) ? spec.text : `<computed: ${spec.getText(sf)}>`;
    imports.push({ specifier, target: specifier, kind: 'unresolved', typeOnly, line: lineOf(at) });
  };
  const isProcess = (e: ts.Expression) =>
    (ts.isIdentifier(e) && e.text === 'process') ||
    (ts.isPropertyAccessExpression(e) && e.name.text === 'process');
  const addRead = (name: string, at: ts.Node) => {
    if (name === 'env' || name === 'argv') reads.push({ token: `process.${name}`, line: lineOf(at) });
  };
  const visit = (n: ts.Node): void => {
    if (ts.isImportDeclaration(n)) {
      addImport(n.moduleSpecifier, n.importClause?.isTypeOnly === true, n);
      const spec = n.moduleSpecifier;
      const bindings = n.importClause?.namedBindings;
      if (ts.isStringLiteral(spec) && /^(?:node:)?process$/.test(spec.text) && bindings !== undefined) {
        if (ts.isNamedImports(bindings))
          for (const el of bindings.elements) addRead((el.propertyName ?? el.name).text, el);
      }
    } else if (ts.isExportDeclaration(n)) {
      addImport(n.moduleSpecifier, n.isTypeOnly, n);
    } else if (ts.isImportEqualsDeclaration(n) && ts.isExternalModuleReference(n.moduleReference)) {
      addImport(n.moduleReference.expression, n.isTypeOnly, n);
    } else if (ts.isCallExpression(n)) {
      const callee = n.expression;
      if (
        callee.kind === ts.SyntaxKind.ImportKeyword ||
        (ts.isIdentifier(callee) && callee.text === 'require')
      )
        addImport(n.arguments[0], false, n);
    } else if (ts.isImportTypeNode(n) && ts.isLiteralTypeNode(n.argument)) {
      addImport(n.argument.literal, true, n);
    } else if (ts.isPropertyAccessExpression(n) && isProcess(n.expression)) {
      addRead(n.name.text, n);
    } else if (
      ts.isElementAccessExpression(n) &&
      isProcess(n.expression) &&
      ts.isStringLiteralLike(n.argumentExpression)
    ) {
      addRead(n.argumentExpression.text, n);
    } else if (ts.isVariableDeclaration(n) && n.initializer !== undefined && isProcess(n.initializer)) {
      if (ts.isObjectBindingPattern(n.name))
        for (const el of n.name.elements) {
          const key = el.propertyName ?? el.name;
          if (ts.isIdentifier(key)) addRead(key.text, el);
        }
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return { imports, reads };
}

/** The package a bare specifier names: `@scope/pkg/x` → `@scope/pkg`, `fastify/types` → `fastify`. */
export function packageName(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

/** A relative specifier to a repo-relative file, the way NodeNext resolves `./x.js` to `x.ts`. */
export function resolveFile(
  from: string,
  specifier: string,
  exists: (file: string) => boolean,
): string | undefined {
  const base = path.posix.normalize(path.posix.join(path.posix.dirname(from), specifier));
  const candidates = [base, base.replace(/\.js$/, '.ts'), base.replace(/\.mjs$/, '.mts'), `${base}.ts`];
  return candidates.find((c) => !c.startsWith('..') && exists(c));
}

/** Build outputs and generated data inside the product folders (ignored by git). */
const GENERATED = ['models/repository', 'node_modules'];

const SOURCE = /\.(?:[cm]?ts|[cm]?js)$/;

/** The import graph of the product code and of every repo file it reaches. */
export function readImportGraph(root: string): ImportGraph {
  const exists = (f: string) => existsSync(path.join(root, f)) && statSync(path.join(root, f)).isFile();
  const graph = new Map<string, ModuleNode>();
  const queue = PRODUCT_DIRS.flatMap((d) => sourceFiles(root, d));
  for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
    if (graph.has(file)) continue;
    const { imports, reads } = scanSource(readFileSync(path.join(root, file), 'utf8'), file);
    const resolved = imports.map((e): ImportEdge => {
      if (e.specifier.startsWith('<computed')) return e;
      if (!e.specifier.startsWith('.') && !e.specifier.startsWith('/'))
        return { ...e, kind: 'package', target: packageName(e.specifier) };
      const target = resolveFile(file, e.specifier, exists);
      return target === undefined ? e : { ...e, kind: 'file', target };
    });
    for (const e of resolved) if (e.kind === 'file' && SOURCE.test(e.target)) queue.push(e.target);
    graph.set(file, { imports: resolved, processReads: reads });
  }
  return graph;
}

/** Imports the scanner could not follow: a computed `import()` or a relative path with no file. */
function unresolved(graph: ImportGraph): Violation[] {
  return [...graph].flatMap(([file, node]) =>
    node.imports
      .filter((e) => e.kind === 'unresolved')
      .map((e) => ({
        wall: 'resolvable' as const,
        file,
        message: `${file}: ${edgeText(e)} resolves to no file, so the walls cannot follow it`,
      })),
  );
}

function sourceFiles(root: string, dir: string): string[] {
  if (!existsSync(path.join(root, dir))) return [];
  return readdirSync(path.join(root, dir), { recursive: true, withFileTypes: false, encoding: 'utf8' })
    .map((f) => `${dir}/${f.split(path.sep).join('/')}`)
    .filter((f) => SOURCE.test(f) && !f.endsWith('.d.ts') && !GENERATED.some((g) => under(f, g)))
    .filter((f) => statSync(path.join(root, f)).isFile())
    .sort();
}
