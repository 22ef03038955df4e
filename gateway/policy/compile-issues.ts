/**
 * Policy problems as the operator reads them: dotted field paths, schema errors in the policy's
 * own wording, one line per problem.
 *
 * Imports neither fastify, undici nor ioredis.
 */
import { Value } from '@sinclair/typebox/value';
import type { CompileResult, PolicyIssue } from './compiled.js';
import { PolicySchema } from './schema.js';

/** `/models/mlp/split/canary` → `models.mlp.split.canary`; `/a/0/b` → `a[0].b`. */
export function dottedPath(pointer: string | readonly (string | number)[]): string {
  const parts =
    typeof pointer === 'string'
      ? pointer
          .split('/')
          .slice(1)
          .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
      : pointer.map(String);
  let out = '';
  for (const part of parts) {
    if (/^\d+$/.test(part)) out += `[${part}]`;
    else if (/^[A-Za-z0-9_-]+$/.test(part)) out += out === '' ? part : `.${part}`;
    else out += `[${JSON.stringify(part)}]`;
  }
  return out === '' ? '(root)' : out;
}

/** A dotted path from its parts: `at('models', 'mlp.v2', 'split')` → `models["mlp.v2"].split`. */
export function at(...parts: (string | number)[]): string {
  return dottedPath(parts);
}

export function formatIssue(issue: PolicyIssue): string {
  return `${issue.path}: ${issue.message}`;
}

/** A rejection with one problem. */
export function fail(path: string, message: string): CompileResult {
  return { ok: false, errors: [{ path, message }] };
}

export function firstLine(s: string): string {
  return s.split('\n')[0] ?? s;
}

/** Schema errors, one per field (the first found), with the policy's own wording where set. */
export function schemaIssues(value: unknown): PolicyIssue[] {
  const byPath = new Map<string, string>();
  for (const e of Value.Errors(PolicySchema, value)) {
    const path = dottedPath(e.path);
    if (byPath.has(path)) continue;
    const custom = (e.schema as { errorMessage?: unknown }).errorMessage;
    const missing = e.message === 'Expected required property';
    byPath.set(path, typeof custom === 'string' && !missing ? custom : describe(e.message, e.schema));
    if (byPath.size >= 100) break;
  }
  return [...byPath].map(([path, message]) => ({ path, message }));
}

function describe(message: string, schema: unknown): string {
  if (message === 'Unexpected property') return 'unknown key';
  if (message === 'Expected required property') return 'required';
  const s = schema as { minProperties?: number; type?: string };
  if (message.startsWith('Expected object to have at least') && s.minProperties === 1)
    return 'must not be empty';
  return message.charAt(0).toLowerCase() + message.slice(1);
}
