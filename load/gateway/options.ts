/**
 * The options of `npm run bench:gateway`, read and checked once (a pure function of argv, so the
 * checks are unit-tested), and the request counts they imply.
 */
import { parseArgs } from 'node:util';

export const TARGET_NAMES = ['direct', 'gateway', 'baseline', 'nginx', 'relay'] as const;
export type TargetName = (typeof TARGET_NAMES)[number];

export const PHASES = ['light', 'saturation', 'cpu', 'moderate'] as const;
export type Phase = (typeof PHASES)[number];

export interface Options {
  quick: boolean;
  runs: number;
  /** The light phase's open-loop rate, requests a second. */
  rate: number;
  targets: readonly TargetName[];
  phases: readonly Phase[];
  compiled: boolean;
  profile: boolean;
  profileTarget: 'gateway' | 'relay';
  /** The git ref whose gateway runs beside this checkout's as target `baseline`. */
  baseline: string | undefined;
  /** The fake upstream's delay before each answer (the moderate phase). */
  upstreamDelayMs: number;
  /** Cross-check the moderate phase with wrk where it is on PATH. */
  wrk: boolean;
  /**
   * The gateway target's policy: without auth or limits (off), with an API key alone (auth), with
   * an API key and local rate limits (keys), or with the limits global in Redis (redis). The baseline keeps the plain policy.
   */
  security: Security;
  /** Target `gateway` only: traces sampled at this ratio, exported to a sink (tracing's cost). */
  traceRatio: number | undefined;
  /** Target `gateway` only: the audit log on, to a file (its cost). */
  auditLog: boolean;
}

export const SECURITY = ['off', 'auth', 'keys', 'redis'] as const;
export type Security = (typeof SECURITY)[number];

export function parseOptions(argv: readonly string[]): Options {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      quick: { type: 'boolean', default: false },
      runs: { type: 'string', default: '1' },
      rate: { type: 'string', default: '200' },
      targets: { type: 'string', default: 'direct,gateway,nginx,relay' },
      only: { type: 'string' },
      compiled: { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
      'profile-target': { type: 'string', default: 'gateway' },
      baseline: { type: 'string' },
      'upstream-delay-ms': { type: 'string', default: '5' },
      'no-wrk': { type: 'boolean', default: false },
      security: { type: 'string', default: 'off' },
      'trace-ratio': { type: 'string' },
      'audit-log': { type: 'boolean', default: false },
    },
  });
  const runs = Number(values.runs);
  if (!Number.isSafeInteger(runs) || runs < 1) throw new Error('--runs must be a positive integer');
  const rate = Number(values.rate);
  if (!Number.isFinite(rate) || rate <= 0 || rate > 5000) throw new Error('--rate must be in (0, 5000]');
  const delay = Number(values['upstream-delay-ms']);
  if (!Number.isFinite(delay) || delay < 0 || delay > 1000) {
    throw new Error('--upstream-delay-ms must be in [0, 1000]');
  }
  const targets = list('--targets', values.targets, TARGET_NAMES);
  if (values.baseline !== undefined) {
    if (values.baseline.trim() === '') throw new Error('--baseline needs a git ref');
    if (values.compiled) throw new Error('--baseline runs both gateways through tsx: drop --compiled');
    if (!targets.includes('baseline')) targets.push('baseline');
  } else if (targets.includes('baseline')) {
    throw new Error('--targets baseline needs --baseline REF');
  }
  const security = values.security as Security;
  if (!SECURITY.includes(security)) {
    throw new Error(`--security takes off, auth, keys or redis, not '${security}'`);
  }
  const traceRatio = values['trace-ratio'] === undefined ? undefined : Number(values['trace-ratio']);
  if (traceRatio !== undefined && !(traceRatio >= 0 && traceRatio <= 1)) {
    throw new Error('--trace-ratio must be in [0, 1]');
  }
  const profileTarget = values['profile-target'];
  if (profileTarget !== 'gateway' && profileTarget !== 'relay') {
    throw new Error(`--profile-target takes gateway or relay, not '${profileTarget}'`);
  }
  return {
    quick: values.quick,
    runs,
    rate,
    targets: TARGET_NAMES.filter((t) => targets.includes(t)),
    phases: values.only === undefined ? PHASES : list('--only', values.only, PHASES),
    compiled: values.compiled,
    profile: values.profile,
    profileTarget,
    baseline: values.baseline?.trim(),
    upstreamDelayMs: delay,
    wrk: !values['no-wrk'],
    security,
    traceRatio,
    auditLog: values['audit-log'],
  };
}

/** A comma-separated list of names from `allowed`, at least one. */
function list<T extends string>(flag: string, text: string, allowed: readonly T[]): T[] {
  const names = text
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '');
  if (names.length === 0) throw new Error(`${flag} needs at least one of ${allowed.join(', ')}`);
  for (const n of names) {
    if (!allowed.includes(n as T)) throw new Error(`${flag}: unknown '${n}' (one of ${allowed.join(', ')})`);
  }
  return names as T[];
}

export interface Counts {
  warmup: number;
  /** Light phase: requests per target and run, at `rate`. */
  latency: number;
  saturation: number;
  cpu: number;
  /** Moderate phase: requests per target and run, and the warm-up of its clients. */
  moderate: number;
  moderateWarmup: number;
  /** Seconds of wrk per target and run in the moderate phase. */
  wrkSeconds: number;
  idleMs: number;
  settleMs: number;
  /** Each phase is cut into this many slices (even: see turnOrder). */
  slices: number;
  saturationConnections: number;
  cpuConnections: number;
  moderateConnections: number;
}

export function countsFor(o: Pick<Options, 'quick' | 'rate'>): Counts {
  const q = o.quick;
  return {
    warmup: q ? 1000 : 3000,
    latency: Math.round(o.rate * (q ? 2 : 6)),
    saturation: q ? 6000 : 30000,
    cpu: q ? 4000 : 20000,
    moderate: q ? 1600 : 8000,
    moderateWarmup: q ? 500 : 2000,
    wrkSeconds: q ? 1 : 3,
    idleMs: q ? 500 : 1000,
    settleMs: q ? 500 : 3000,
    slices: q ? 2 : 4,
    saturationConnections: 32,
    cpuConnections: 8,
    moderateConnections: 8,
  };
}
