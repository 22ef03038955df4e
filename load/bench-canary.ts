/**
 * `npm run bench:canary`: the canary's statistics on synthetic streams with a fake clock, seeded,
 * beside how fixed thresholds in the manner of Flagger would judge the same streams.
 *
 * Traffic: --rate requests per second (default 20) split by the canary's weight; errors are
 * Bernoulli, latencies log-normal (median 20 ms, sigma 0.5). The controller is the gateway's own
 * (gateway/rollout/canary.ts) on a fake clock, with the policy
 *   steps [5, 25, 50, 100], stepSeconds 60, minSamples --min-samples (200),
 *   maxErrorRateIncrease --error-margin, maxLatencyIncreasePercent --latency-margin, confidence 0.95.
 * Fixed thresholds (Flagger's analysis): every 60 s interval, the canary's own success rate must be
 * at least 97% (the baseline's 98% less the same one-point margin) and its p99 at most 1.2 times
 * the baseline's true p99; 5 failed checks roll back; a passing check moves to the next weight of
 * the same steps; no traffic in an interval is a failed check ("no values found").
 * Scenarios: A/A (both 2% errors), doubled errors (4%), 1.5x latency. --runs N each (default 400),
 * --seed S, --min-samples N, --error-margin X (0.01), --latency-margin PERCENT (20): the fixed
 * thresholds take the same margins. Prints a Markdown table.
 */
import './usage.js';
import { parseArgs } from 'node:util';
import type { Clock } from '../common/clock.js';
import { silentLogger } from '../common/logging.js';
import { compilePolicy } from '../gateway/policy/compile.js';
import type { CompiledCanary } from '../gateway/policy/compiled.js';
import { CanaryController } from '../gateway/rollout/canary.js';
import { RolloutMetrics } from '../gateway/rollout/metrics.js';
import { normalQuantile } from '../gateway/rollout/stats.js';
import { mulberry32 } from '../models/reference.js';
import { Registry } from 'prom-client';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '400' },
    seed: { type: 'string', default: '1' },
    rate: { type: 'string', default: '20' },
    'min-samples': { type: 'string', default: '200' },
    'error-margin': { type: 'string', default: '0.01' },
    'latency-margin': { type: 'string', default: '20' },
  },
});
const RUNS = Number(values.runs);
const SEED = Number(values.seed);
const RATE = Number(values.rate);
const MIN_SAMPLES = Number(values['min-samples']);
const ERROR_MARGIN = Number(values['error-margin']);
const LATENCY_MARGIN = Number(values['latency-margin']);
const STEPS = [5, 25, 50, 100];
const BASE_ERRORS = 0.02;
const MEDIAN = 0.02;
const SIGMA = 0.5;
const P99 = MEDIAN * Math.exp(SIGMA * normalQuantile(0.99));
const HORIZON_S = 4 * 3600;

class SimClock implements Clock {
  t = 0;
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private next = 1;
  now = () => this.t;
  setTimer = (fn: () => void, ms: number) => {
    const id = this.next++;
    this.timers.push({ at: this.t + ms, fn, id });
    return id;
  };
  clearTimer = (h: unknown) => {
    this.timers = this.timers.filter((x) => x.id !== h);
  };
  advance(ms: number): void {
    const target = this.t + ms;
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at);
      const first = this.timers[0];
      if (first === undefined || first.at > target) break;
      this.timers.shift();
      this.t = first.at;
      first.fn();
    }
    this.t = target;
  }
}

function config(): CompiledCanary {
  const r = compilePolicy(`version: 1
backends: { a: { endpoints: [http://127.0.0.1:1] } }
models:
  m:
    variants: { stable: { backend: a, model: x }, candidate: { backend: a, model: x } }
    split: { stable: 1 }
    canary: { variant: candidate, baseline: stable, steps: [${STEPS.join(', ')}], stepSeconds: 60,
              minSamples: ${MIN_SAMPLES}, maxErrorRateIncrease: ${ERROR_MARGIN}, maxLatencyIncreasePercent: ${LATENCY_MARGIN} }
`);
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.policy.models.get('m')?.canary as CompiledCanary;
}

interface Scenario {
  name: string;
  errors: number;
  latency: number;
}
const SCENARIOS: Scenario[] = [
  { name: 'A/A (2% errors both, same latency)', errors: BASE_ERRORS, latency: 1 },
  { name: 'doubled error rate (4% against 2%)', errors: 2 * BASE_ERRORS, latency: 1 },
  { name: 'latency 1.5x', errors: BASE_ERRORS, latency: 1.5 },
];

type Sample = { error: boolean; seconds: number };
function stream(random: () => number, errors: number, scale: number): () => Sample {
  return () => {
    // Box–Muller for the log-normal latency.
    const z = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
    return { error: random() < errors, seconds: scale * MEDIAN * Math.exp(SIGMA * z) };
  };
}

interface Outcome {
  rolledBack: boolean;
  canarySamples: number;
  seconds: number;
}

function ours(s: Scenario, seed: number, cfg: CompiledCanary): Outcome {
  const random = mulberry32(seed);
  const clock = new SimClock();
  const metrics = new RolloutMetrics(new Registry(), { shadow: () => [], canary: () => [] });
  const c = new CanaryController('m', cfg, {
    clock,
    random,
    logger: silentLogger(),
    metrics,
    changed: () => {},
  });
  const canary = stream(random, s.errors, s.latency);
  const baseline = stream(random, BASE_ERRORS, 1);
  let canarySamples = 0;
  for (let t = 0; t < HORIZON_S && c.state === 'progressing'; t++) {
    for (let i = 0; i < RATE; i++) {
      const toCanary = random() * 100 < c.weight;
      const x = toCanary ? canary() : baseline();
      if (toCanary) canarySamples++;
      c.record(toCanary ? 'candidate' : 'stable', x.error ? 502 : 200, x.seconds);
    }
    clock.advance(1000);
  }
  c.close();
  return { rolledBack: c.state === 'rolled_back', canarySamples, seconds: clock.t / 1000 };
}

function fixed(s: Scenario, seed: number): Outcome {
  const random = mulberry32(seed);
  const canary = stream(random, s.errors, s.latency);
  let failed = 0;
  let step = 0;
  let canarySamples = 0;
  let seconds = 0;
  while (step < STEPS.length - 1 && seconds < HORIZON_S) {
    const w = STEPS[step] as number;
    const interval: Sample[] = [];
    for (let i = 0; i < RATE * 60; i++) if (random() * 100 < w) interval.push(canary());
    canarySamples += interval.length;
    seconds += 60;
    const errors = interval.filter((x) => x.error).length;
    const ok = interval
      .filter((x) => !x.error)
      .map((x) => x.seconds)
      .sort((a, b) => a - b);
    const p99 =
      ok.length === 0
        ? Number.POSITIVE_INFINITY
        : (ok[Math.min(ok.length - 1, Math.ceil(0.99 * ok.length) - 1)] as number);
    const pass =
      interval.length > 0 &&
      1 - errors / interval.length >= 1 - BASE_ERRORS - ERROR_MARGIN &&
      p99 <= (1 + LATENCY_MARGIN / 100) * P99;
    if (pass) step++;
    else if (++failed >= 5) return { rolledBack: true, canarySamples, seconds };
  }
  return { rolledBack: false, canarySamples, seconds };
}

function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] as number;
}

const cfg = config();
const rows: string[] = [
  `Seed ${SEED}, ${RUNS} runs per scenario, ${RATE} req/s, minSamples ${MIN_SAMPLES}, margins ${ERROR_MARGIN} and ${LATENCY_MARGIN}%, confidence 0.95 (per-test alpha ${((1 - 0.95) / 6).toFixed(4)}).`,
  '',
  '| scenario | judge | rolled back | canary samples to rollback (median / p90) | minutes to rollback (median) |',
  '|---|---|---|---|---|',
];
for (const s of SCENARIOS) {
  for (const [judge, run] of [
    [
      'infergate (rank and proportion tests vs baseline, once per step)',
      (seed: number) => ours(s, seed, cfg),
    ],
    ['fixed thresholds every 60 s (Flagger-style)', (seed: number) => fixed(s, seed)],
  ] as const) {
    const outcomes = Array.from({ length: RUNS }, (_, i) => run(SEED * 100_003 + i));
    const back = outcomes.filter((o) => o.rolledBack);
    const share = back.length / RUNS;
    rows.push(
      `| ${s.name} | ${judge} | ${(100 * share).toFixed(1)}% | ${
        back.length === 0
          ? '-'
          : `${quantile(
              back.map((o) => o.canarySamples),
              0.5,
            )} / ${quantile(
              back.map((o) => o.canarySamples),
              0.9,
            )}`
      } | ${
        back.length === 0
          ? '-'
          : (
              quantile(
                back.map((o) => o.seconds),
                0.5,
              ) / 60
            ).toFixed(1)
      } |`,
    );
  }
}
process.stdout.write(`${rows.join('\n')}\n`);
