/**
 * One entry of the `models` section: variants resolved to their backends, the weighted split
 * turned into bounds, explicit routes, the shadow and canary sections (compile-rollout.ts), and
 * its rate limits.
 *
 * Imports neither fastify, undici nor ioredis.
 */
import { compileRate } from './compile-auth.js';
import { merge, retries } from './compile-defaults.js';
import { at } from './compile-issues.js';
import { compileCanary, compileShadow } from './compile-rollout.js';
import type {
  CompiledBackend,
  CompiledConcurrency,
  CompiledModel,
  CompiledRetries,
  CompiledRoute,
  CompiledSplit,
  CompiledVariant,
  PolicyIssue,
} from './compiled.js';
import type { ModelDocument } from './schema.js';

/** A UTF-16 surrogate without its pair: not a character, and encodeURIComponent throws on it. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export interface ModelDefaults {
  readonly timeoutMs: number;
  readonly retries: CompiledRetries;
  readonly concurrency: CompiledConcurrency;
  /** The top-level `batch.maxShare`, or the built-in default. */
  readonly batchShare: number;
}

/** One model, or undefined when it has problems (pushed onto `errors`). */
export function compileModel(
  name: string,
  def: ModelDocument,
  backends: ReadonlyMap<string, CompiledBackend>,
  defaults: ModelDefaults,
  errors: PolicyIssue[],
  _warnings: PolicyIssue[],
): CompiledModel | undefined {
  const base = ['models', name] as const;
  const before = errors.length;
  const variants = new Map<string, CompiledVariant>();
  const byVersion = new Map<string, CompiledVariant>();
  for (const [vname, v] of Object.entries(def.variants)) {
    const backend = backends.get(v.backend);
    if (backend === undefined) {
      errors.push({
        path: at(...base, 'variants', vname, 'backend'),
        message: `unknown backend '${v.backend}'`,
      });
      continue;
    }
    if (LONE_SURROGATE.test(v.model)) {
      errors.push({ path: at(...base, 'variants', vname, 'model'), message: 'is not well-formed Unicode' });
      continue;
    }
    const version = v.version === undefined ? undefined : String(v.version);
    const prefix = `/v2/models/${encodeURIComponent(v.model)}${version === undefined ? '' : `/versions/${version}`}`;
    const variant: CompiledVariant = Object.freeze({
      name: vname,
      backend,
      model: v.model,
      version,
      inferPath: `${prefix}/infer`,
      metadataPath: prefix,
      readyPath: `${prefix}/ready`,
    });
    variants.set(vname, variant);
    if (version !== undefined && !byVersion.has(version)) byVersion.set(version, variant);
  }
  const variantAt = (path: string, vname: string): CompiledVariant | undefined => {
    const v = variants.get(vname);
    if (v === undefined && !Object.hasOwn(def.variants, vname)) {
      errors.push({ path, message: `unknown variant '${vname}'` });
    }
    return v;
  };

  // The weighted split.
  let split: CompiledSplit = { variants: [], bounds: [] };
  if (def.split === undefined) {
    const only = [...variants.values()];
    if (Object.keys(def.variants).length > 1) {
      errors.push({ path: at(...base, 'split'), message: 'required when a model has more than one variant' });
    } else if (only[0] !== undefined) {
      split = { variants: [only[0]], bounds: [100] };
    }
  } else {
    const weighted: [CompiledVariant, number][] = [];
    let total = 0;
    for (const [vname, weight] of Object.entries(def.split)) {
      const v = variantAt(at(...base, 'split', vname), vname);
      if (v !== undefined && weight > 0) {
        weighted.push([v, weight]);
        total += weight;
      }
    }
    if (total <= 0 && errors.length === before) {
      errors.push({ path: at(...base, 'split'), message: 'the weights must have a positive sum' });
    } else if (total > 0) {
      let cumulative = 0;
      const bounds = weighted.map(([, w], i) => {
        cumulative += w;
        return i === weighted.length - 1 ? 100 : (cumulative / total) * 100;
      });
      split = { variants: weighted.map(([v]) => v), bounds };
    }
  }

  const routes: CompiledRoute[] = [];
  (def.routes ?? []).forEach((r, i) => {
    const v = variantAt(at(...base, 'routes', i, 'variant'), r.variant);
    const headers = Object.entries(r.match.headers).map(([h, value]) => [h.toLowerCase(), value] as const);
    const seen = new Set<string>();
    for (const [h] of headers) {
      if (seen.has(h)) {
        errors.push({
          path: at(...base, 'routes', i, 'match', 'headers'),
          message: `header '${h}' is listed twice`,
        });
      }
      seen.add(h);
    }
    if (v !== undefined) routes.push(Object.freeze({ headers, variant: v }));
  });

  const shadow = def.shadow === undefined ? undefined : compileShadow(name, def.shadow, variantAt);
  const canary = def.canary === undefined ? undefined : compileCanary(name, def.canary, variantAt, errors);

  if (errors.length > before) return undefined;
  return Object.freeze({
    name,
    variants,
    byVersion,
    split: Object.freeze(split),
    stickyHeader: def.sticky?.header.toLowerCase(),
    routes: Object.freeze(routes),
    timeoutMs: def.timeoutMs ?? defaults.timeoutMs,
    retries: retries(def.retries, defaults.retries),
    concurrency: merge(defaults.concurrency, def.concurrency),
    batchShare: def.batch?.maxShare ?? defaults.batchShare,
    public: def.public === true,
    rateLimit:
      def.rateLimit === undefined
        ? undefined
        : compileRate({ requestsPerSecond: def.rateLimit.requestsPerSecond, burst: def.rateLimit.burst }),
    keyRateLimit: compileRate(def.rateLimit?.perKey),
    shadow,
    canary,
  });
}
