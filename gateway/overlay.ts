/**
 * The run-time overlay of a snapshot: split weights that replace the policy's for some models
 * (the canary controller writes them as a rollout advances). Empty today. Applying it is pure:
 * the policy stays as compiled, and the router reads a policy with the overlay's splits.
 */
import type { CompiledModel, CompiledPolicy, CompiledSplit } from './policy/compile.js';

export interface WeightOverlay {
  /** Weights by variant name, by logical model; variants left out get 0. */
  readonly weights: ReadonlyMap<string, ReadonlyMap<string, number>>;
}

export const EMPTY_OVERLAY: WeightOverlay = Object.freeze({ weights: new Map() });

/** The policy the router reads: `policy` itself when the overlay changes nothing. */
export function applyOverlay(policy: CompiledPolicy, overlay: WeightOverlay): CompiledPolicy {
  if (overlay.weights.size === 0) return policy;
  const models = new Map(policy.models);
  for (const [name, weights] of overlay.weights) {
    const model = policy.models.get(name);
    if (model === undefined) continue;
    const split = splitOf(model, weights);
    if (split !== undefined) models.set(name, Object.freeze({ ...model, split }));
  }
  return Object.freeze({ ...policy, models });
}

/** Bounds on [0, 100) as the compiler makes them; undefined when no weight is positive. */
function splitOf(model: CompiledModel, weights: ReadonlyMap<string, number>): CompiledSplit | undefined {
  const weighted = [...model.variants.values()].filter((v) => (weights.get(v.name) ?? 0) > 0);
  const total = weighted.reduce((sum, v) => sum + (weights.get(v.name) as number), 0);
  if (!(total > 0)) return undefined;
  let cumulative = 0;
  const bounds = weighted.map((v, i) => {
    cumulative += weights.get(v.name) as number;
    return i === weighted.length - 1 ? 100 : (cumulative / total) * 100;
  });
  return Object.freeze({ variants: weighted, bounds });
}
