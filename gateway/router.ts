/**
 * The router: a pure function of (compiled policy, request facts, random source). Order:
 * a version pin, then header routes, then sticky assignment, then the weighted split.
 *
 * Imports neither fastify, undici nor ioredis; tested without sockets.
 */
import type { CompiledModel, CompiledPolicy, CompiledVariant } from './policy/compile.js';

export type RouteReason = 'version' | 'route' | 'sticky' | 'split';

/** What the router needs to know about a request. */
export interface RequestFacts {
  readonly model: string;
  /** From `/versions/{v}`; pins the variant with that backend version. */
  readonly version?: string | undefined;
  /** Header lookup by lower-case name (node's `IncomingHttpHeaders` fits). */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

export type RouteDecision =
  | {
      readonly ok: true;
      readonly model: CompiledModel;
      readonly variant: CompiledVariant;
      readonly reason: RouteReason;
    }
  | { readonly ok: false; readonly error: 'model_not_found' | 'version_not_found' | 'no_variant' };

/** Returns a number in [0, 1). */
export type RandomSource = () => number;

export function route(policy: CompiledPolicy, facts: RequestFacts, random: RandomSource): RouteDecision {
  const model = policy.models.get(facts.model);
  if (model === undefined) return { ok: false, error: 'model_not_found' };

  if (facts.version !== undefined) {
    const variant = model.byVersion.get(facts.version);
    return variant === undefined
      ? { ok: false, error: 'version_not_found' }
      : { ok: true, model, variant, reason: 'version' };
  }

  for (const r of model.routes) {
    let all = true;
    for (const [name, value] of r.headers) {
      if (headerValue(facts.headers, name) !== value) {
        all = false;
        break;
      }
    }
    if (all) return { ok: true, model, variant: r.variant, reason: 'route' };
  }

  if (model.stickyHeader !== undefined) {
    const user = headerValue(facts.headers, model.stickyHeader);
    if (user !== undefined && user !== '') {
      const variant = pick(model, stickyPoint(model.name, user));
      if (variant !== undefined) return { ok: true, model, variant, reason: 'sticky' };
    }
  }

  const variant = pick(model, random() * 100);
  return variant === undefined
    ? { ok: false, error: 'no_variant' }
    : { ok: true, model, variant, reason: 'split' };
}

/** The variant whose cumulative-weight interval holds `point` (in [0, 100)). */
function pick(model: CompiledModel, point: number): CompiledVariant | undefined {
  const { variants, bounds } = model.split;
  for (let i = 0; i < bounds.length; i++) {
    if (point < (bounds[i] as number)) return variants[i];
  }
  return variants[variants.length - 1];
}

/**
 * A user's fixed point in [0, 100): FNV-1a (32 bit) of model and user. Because the point never
 * moves, a weight change (90/10 → 80/20) moves only the users whose point lies between the old
 * and the new boundary.
 */
export function stickyPoint(model: string, user: string): number {
  let h = 0x811c9dc5;
  const key = `${model}\u0000${user}`;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  // Final avalanche (murmur3's fmix32) so that similar ids spread evenly.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return ((h >>> 0) / 0x1_0000_0000) * 100;
}

function headerValue(headers: RequestFacts['headers'], name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}
