/**
 * Two policies compared for `infergate policy diff`: in words (each setting added, removed or
 * changed, by its path in the document) and in lines (a unified diff of the YAML sources).
 */
import { parse } from 'yaml';

export interface Change {
  readonly path: string;
  readonly kind: 'added' | 'removed' | 'changed';
  readonly from?: unknown;
  readonly to?: unknown;
}

/** The settings that differ between two parsed documents, by path (`models.mlp.split.stable`). */
export function changesBetween(a: unknown, b: unknown, path = ''): Change[] {
  if (isObject(a) && isObject(b)) {
    const out: Change[] = [];
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
    for (const k of keys) {
      const p = path === '' ? k : `${path}.${k}`;
      if (!(k in b)) out.push({ path: p, kind: 'removed', from: a[k] });
      else if (!(k in a)) out.push({ path: p, kind: 'added', to: b[k] });
      else out.push(...changesBetween(a[k], b[k], p));
    }
    return out;
  }
  if (JSON.stringify(a) === JSON.stringify(b)) return [];
  return [{ path: path === '' ? '(document)' : path, kind: 'changed', from: a, to: b }];
}

/** The changes in words, one line each; "no change" when there is none. */
export function describeChanges(fromText: string, toText: string): string[] {
  const changes = changesBetween(parse(fromText) ?? {}, parse(toText) ?? {});
  if (changes.length === 0) return ['no change in any setting'];
  return changes.map((c) =>
    c.kind === 'added'
      ? `${c.path}: added ${show(c.to)}`
      : c.kind === 'removed'
        ? `${c.path}: removed (was ${show(c.from)})`
        : `${c.path}: ${show(c.from)} -> ${show(c.to)}`,
  );
}

/** A unified diff of two texts (3 lines of context), empty when they are equal. */
export function unifiedDiff(fromText: string, toText: string, fromName: string, toName: string): string {
  const a = lines(fromText);
  const b = lines(toText);
  const ops = diffOps(a, b);
  if (ops.every((o) => o.op === ' ')) return '';
  const out = [`--- ${fromName}`, `+++ ${toName}`];
  const context = 3;
  const changed = ops.flatMap((o, i) => (o.op === ' ' ? [] : [i]));
  // Hunks: changes less than two contexts apart share one.
  let first = 0;
  while (first < changed.length) {
    let last = first;
    while (
      last + 1 < changed.length &&
      (changed[last + 1] as number) - (changed[last] as number) <= 2 * context
    )
      last++;
    const start = Math.max(0, (changed[first] as number) - context);
    const stop = Math.min(ops.length, (changed[last] as number) + context + 1);
    const hunk = ops.slice(start, stop);
    const aLen = hunk.filter((o) => o.op !== '+').length;
    const bLen = hunk.filter((o) => o.op !== '-').length;
    const aStart = (hunk[0] as Op).a + (aLen === 0 ? 0 : 1);
    const bStart = (hunk[0] as Op).b + (bLen === 0 ? 0 : 1);
    out.push(`@@ -${aStart},${aLen} +${bStart},${bLen} @@`);
    for (const o of hunk) out.push(`${o.op}${o.text}`);
    first = last + 1;
  }
  return `${out.join('\n')}\n`;
}

interface Op {
  readonly op: ' ' | '-' | '+';
  readonly text: string;
  /** Line indexes in a and b where this op stands. */
  readonly a: number;
  readonly b: number;
}

/** Longest common subsequence of lines (policies are small: quadratic is fine up to a few thousand). */
function diffOps(a: readonly string[], b: readonly string[]): Op[] {
  const n = a.length;
  const m = b.length;
  const lcs: Uint32Array[] = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      const row = lcs[i] as Uint32Array;
      row[j] =
        a[i] === b[j]
          ? (lcs[i + 1] as Uint32Array)[j + 1]! + 1
          : Math.max((lcs[i + 1] as Uint32Array)[j]!, row[j + 1]!);
    }
  }
  const ops: Op[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) {
      ops.push({ op: ' ', text: a[i] as string, a: i, b: j });
      i++;
      j++;
    } else if (i < n && (j >= m || (lcs[i + 1] as Uint32Array)[j]! >= (lcs[i] as Uint32Array)[j + 1]!)) {
      ops.push({ op: '-', text: a[i] as string, a: i, b: j });
      i++;
    } else {
      ops.push({ op: '+', text: b[j] as string, a: i, b: j });
      j++;
    }
  }
  return ops;
}

function lines(text: string): string[] {
  const l = text.split('\n');
  if (l.at(-1) === '') l.pop();
  return l;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function show(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? 'null' : s.length > 120 ? `${s.slice(0, 117)}...` : s;
}
