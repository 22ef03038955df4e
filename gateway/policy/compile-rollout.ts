/**
 * A model's `shadow` and `canary` sections, compiled: variants resolved, defaults filled in,
 * cross-references checked with their field paths.
 *
 * Imports neither fastify, undici nor ioredis.
 */
import { at } from './compile-issues.js';
import type { CompiledCanary, CompiledShadow, CompiledVariant, PolicyIssue } from './compiled.js';
import type { ModelDocument } from './schema.js';

type VariantAt = (path: string, name: string) => CompiledVariant | undefined;

export const SHADOW_DEFAULTS = Object.freeze({
  timeoutMs: 2000,
  maxInFlight: 64,
  tolerance: 1e-6,
  noiseFloorPercent: 0,
});

export function compileShadow(
  model: string,
  def: NonNullable<ModelDocument['shadow']>,
  variantAt: VariantAt,
): CompiledShadow | undefined {
  const variant = variantAt(at('models', model, 'shadow', 'variant'), def.variant);
  if (variant === undefined) return undefined;
  return Object.freeze({
    variant,
    percent: def.percent,
    timeoutMs: def.timeoutMs ?? SHADOW_DEFAULTS.timeoutMs,
    maxInFlight: def.maxInFlight ?? SHADOW_DEFAULTS.maxInFlight,
    classifications: new Set(def.classifications ?? []),
    tolerance: def.tolerance ?? SHADOW_DEFAULTS.tolerance,
    noiseFloorPercent: def.noiseFloorPercent ?? SHADOW_DEFAULTS.noiseFloorPercent,
    logTensors: def.logTensors ?? false,
  });
}

export function compileCanary(
  model: string,
  def: NonNullable<ModelDocument['canary']>,
  variantAt: VariantAt,
  errors: PolicyIssue[],
): CompiledCanary | undefined {
  const base = ['models', model, 'canary'] as const;
  const before = errors.length;
  const variant = variantAt(at(...base, 'variant'), def.variant);
  const baseline = variantAt(at(...base, 'baseline'), def.baseline);
  if (def.variant === def.baseline) {
    errors.push({ path: at(...base, 'baseline'), message: 'must differ from the canary variant' });
  }
  def.steps.forEach((step, i) => {
    const prev = def.steps[i - 1];
    if (prev !== undefined && step <= prev) {
      errors.push({ path: at(...base, 'steps', i), message: 'steps must increase' });
    } else if (step <= 0) {
      errors.push({ path: at(...base, 'steps', i), message: 'a step must give the canary some weight' });
    }
  });
  if (variant === undefined || baseline === undefined || errors.length > before) return undefined;
  const confidence = def.confidence ?? 0.95;
  return Object.freeze({
    variant,
    baseline,
    steps: Object.freeze([...def.steps]),
    stepSeconds: def.stepSeconds,
    minSamples: def.minSamples,
    maxErrorRateIncrease: def.maxErrorRateIncrease,
    maxLatencyIncreasePercent: def.maxLatencyIncreasePercent,
    confidence,
    key: JSON.stringify({ ...def, confidence }),
  });
}
