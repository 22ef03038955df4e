/**
 * The capacity sweep of one model: the open-loop rate through the gateway rises step by step
 * (x `factor`) until a step breaks: p99 over `p99Ms`, more than 1% of arrivals failed or
 * dropped, or the answers falling short of 90% of the rate. A broken step is run once more
 * before it counts (a shared machine has bad seconds), then the gap between the last held rate
 * and the broken one is halved `refine` times. The knee is the highest rate held; with the CPU
 * each process used at it, it is also requests a second per gateway core and per backend core.
 */
import { cpuOf } from '../lib.js';
import { type OpenLoopResult, openLoop } from './open-loop.js';
import { type CapacityModel, requestFor, type Stack } from './setup.js';

export interface SweepOptions {
  p99Ms: number;
  startRate: number;
  factor: number;
  stepSeconds: number;
  maxSteps: number;
  refine: number;
  maxInFlight: number;
}

export interface Step extends OpenLoopResult {
  rate: number;
  /** CPU seconds a second over the step: the gateway's, the backend's, this client's. */
  gatewayCores: number;
  backendCores: number;
  clientCores: number;
  held: boolean;
  /** Why the step broke, when it did. */
  broke?: string;
}

export interface Sweep {
  model: CapacityModel;
  steps: Step[];
  knee: Step | undefined;
  perGatewayCore: number | undefined;
  perBackendCore: number | undefined;
}

/** Why a step at `rate` broke, or undefined when it held. */
export function broke(rate: number, r: OpenLoopResult, p99Ms: number): string | undefined {
  if (r.answered === 0) return 'no answers';
  if (r.failed + r.dropped > 0.01 * r.offered) return `${r.failed} failed, ${r.dropped} dropped`;
  if (r.p99Ms > p99Ms) return `p99 ${r.p99Ms.toFixed(1)} ms`;
  if (r.achievedRps < 0.9 * rate) return `${r.achievedRps.toFixed(0)} answers/s`;
  return undefined;
}

async function step(stack: Stack, model: CapacityModel, rate: number, o: SweepOptions): Promise<Step> {
  const pids = [stack.gateway.pid, stack.backend.pid];
  const [g0, b0] = [await cpuOf([pids[0]!]), await cpuOf([pids[1]!])];
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const r = await openLoop({
    url: `${stack.gateway.url}/v2/models/${model}/infer`,
    ...requestFor(model),
    rate,
    seconds: o.stepSeconds,
    maxInFlight: o.maxInFlight,
  });
  const wall = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  const why = broke(rate, r, o.p99Ms);
  return {
    rate,
    ...r,
    gatewayCores: ((await cpuOf([pids[0]!])) - g0) / wall,
    backendCores: ((await cpuOf([pids[1]!])) - b0) / wall,
    clientCores: (c.user + c.system) / 1e6 / wall,
    held: why === undefined,
    ...(why === undefined ? {} : { broke: why }),
  };
}

/** Runs the sweep of `model`; `progress` hears of every step. */
export async function sweep(
  stack: Stack,
  model: CapacityModel,
  o: SweepOptions,
  progress: (s: Step) => void = () => {},
): Promise<Sweep> {
  const steps: Step[] = [];
  const run = async (rate: number) => {
    const s = await step(stack, model, Math.round(rate), o);
    steps.push(s);
    progress(s);
    return s;
  };
  // Warm-up: JIT, connection pools, the batcher.
  await openLoop({
    url: `${stack.gateway.url}/v2/models/${model}/infer`,
    ...requestFor(model),
    rate: o.startRate,
    seconds: Math.min(2, o.stepSeconds),
    maxInFlight: o.maxInFlight,
  });
  let held: number | undefined;
  let broken: number | undefined;
  let rate = o.startRate;
  for (let i = 0; i < o.maxSteps && broken === undefined; i++) {
    let s = await run(rate);
    if (!s.held) s = await run(rate);
    if (s.held) held = rate;
    else broken = rate;
    rate *= o.factor;
  }
  for (let i = 0; i < o.refine && held !== undefined && broken !== undefined; i++) {
    const mid = (held + broken) / 2;
    if (Math.round(mid) === Math.round(held) || Math.round(mid) === Math.round(broken)) break;
    if ((await run(mid)).held) held = mid;
    else broken = mid;
  }
  const knee =
    held === undefined
      ? undefined
      : steps.filter((s) => s.held && s.rate === Math.round(held!)).sort((a, b) => b.p99Ms - a.p99Ms)[0];
  return {
    model,
    steps,
    knee,
    perGatewayCore: knee === undefined ? undefined : knee.achievedRps / knee.gatewayCores,
    perBackendCore: knee === undefined ? undefined : knee.achievedRps / knee.backendCores,
  };
}
