/**
 * Policy compiler: YAML text → validated, cross-checked, immutable runtime snapshot. Every problem
 * is found here, at load, with its field path; nothing is checked per request.
 *
 * The sections live beside this file: `compiled.ts` (the snapshot's types), `compile-defaults.ts`,
 * `compile-issues.ts` (paths and wording), `compile-backends.ts`, `compile-model.ts`. This file
 * re-exports their public names, so importers need only this one.
 *
 * Imports neither fastify, undici nor ioredis.
 */
import { createHash } from 'node:crypto';
import { LineCounter, parseDocument } from 'yaml';
import { compileAuth, compileRateSettings } from './compile-auth.js';
import { compileBackends } from './compile-backends.js';
import {
  DEFAULT_BATCH_SHARE,
  DEFAULT_LIMITS,
  inheritedDefaults,
  MAX_POLICY_BYTES,
  merge,
} from './compile-defaults.js';
import { at, fail, firstLine, schemaIssues } from './compile-issues.js';
import { compileModel } from './compile-model.js';
import type { CompiledModel, CompileResult, PolicyIssue } from './compiled.js';
import type { PolicyDocument } from './schema.js';

export {
  DEFAULT_BATCH_SHARE,
  DEFAULT_CIRCUIT_BREAKER,
  DEFAULT_HEALTH_CHECK,
  DEFAULT_LIMITS,
  DEFAULT_MODEL_CONCURRENCY,
  DEFAULT_OUTLIER_DETECTION,
  DEFAULT_RETRIES,
  DEFAULT_TIMEOUT_MS,
  MAX_POLICY_BYTES,
} from './compile-defaults.js';
export { dottedPath, formatIssue } from './compile-issues.js';
export type {
  CompiledAuth,
  CompiledBackend,
  CompiledJwt,
  CompiledRate,
  CompiledRateSettings,
  CompiledCircuitBreaker,
  CompiledConcurrency,
  CompiledHealthCheck,
  CompiledModel,
  CompiledOutlierDetection,
  CompiledPolicy,
  CompiledRetries,
  CompiledRoute,
  CompiledSplit,
  CompiledUpstreamTls,
  CompiledVariant,
  CompileResult,
  KeyRecord,
  PolicyIssue,
} from './compiled.js';

/** Parse, validate and compile one policy. Never throws. */
export function compilePolicy(text: string): CompileResult {
  try {
    return compileText(text);
  } catch (e) {
    // A value the checks above let through and the compiler could not use: still a rejection.
    return fail('(root)', `the policy could not be compiled: ${firstLine((e as Error).message)}`);
  }
}

function compileText(text: string): CompileResult {
  if (Buffer.byteLength(text, 'utf8') > MAX_POLICY_BYTES) {
    return fail('(root)', `the policy is larger than ${MAX_POLICY_BYTES} bytes`);
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      errors: doc.errors.map((e) => {
        const pos = lines.linePos(e.pos[0]);
        return { path: `(yaml line ${pos.line}, column ${pos.col})`, message: firstLine(e.message) };
      }),
    };
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    return fail('(root)', firstLine((e as Error).message));
  }
  if (value === null || value === undefined) return fail('(root)', 'the policy is empty');
  if (typeof value !== 'object') {
    return fail('(root)', 'the policy must be a mapping');
  }
  return compileDocument(value);
}

/** Validate and compile an already-parsed document (JSON or YAML). */
export function compileDocument(value: unknown): CompileResult {
  const schemaErrors = schemaIssues(value);
  if (schemaErrors.length > 0) return { ok: false, errors: schemaErrors };
  const document = value as PolicyDocument;
  const errors: PolicyIssue[] = [];
  const warnings: PolicyIssue[] = [];

  const defaults = inheritedDefaults(document.defaults);
  const backends = compileBackends(document.backends, defaults.backend, errors);
  const models = new Map<string, CompiledModel>();
  const modelDefaults = { ...defaults.model, batchShare: document.batch?.maxShare ?? DEFAULT_BATCH_SHARE };
  for (const [name, def] of Object.entries(document.models)) {
    const model = compileModel(name, def, backends, modelDefaults, errors, warnings);
    if (model !== undefined) models.set(name, model);
  }

  const auth =
    document.auth === undefined
      ? undefined
      : compileAuth(document.auth, new Set(Object.keys(document.models)), errors);
  for (const [name, def] of Object.entries(document.models)) {
    if (def.public === true && auth === undefined) {
      warnings.push({ path: at('models', name, 'public'), message: 'has no effect without an auth section' });
    }
  }

  if (errors.length > 0) return { ok: false, errors };
  return {
    ok: true,
    policy: Object.freeze({
      sha256: createHash('sha256').update(JSON.stringify(document)).digest('hex'),
      backends,
      models,
      limits: merge(DEFAULT_LIMITS, document.limits),
      auth,
      rateLimit: compileRateSettings(document.rateLimit),
      warnings: Object.freeze(warnings),
      document,
    }),
  };
}
