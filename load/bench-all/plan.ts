/**
 * What `npm run bench` runs, in order: each benchmark of the repository through its own function,
 * a full and a --quick size of each. Every step's JSON is kept whole under its name.
 */
import type { BackendReport } from '../backend/measure.js';
import { benchBackend } from '../backend/run.js';
import { parseBackendOptions } from '../backend/setup.js';
import type { FleetReport } from '../fleet/run.js';
import { benchFleet } from '../fleet/run.js';
import type { Counts } from '../gateway/options.js';
import { parseOptions } from '../gateway/options.js';
import type { GatewayReport } from '../gateway/report.js';
import { benchGateway } from '../gateway/run.js';
import { shadowCompare } from '../shadow/compare.js';
import { type ShadowLive, shadowLive } from '../shadow-live.js';
import { type Curve, latencyCurve } from './curve.js';

export interface Results {
  gateway?: GatewayReport;
  curve?: Curve;
  security?: GatewayReport;
  tracing?: { ratio: number; report: GatewayReport }[];
  backend?: BackendReport['data'];
  fleet?: FleetReport;
  shadow?: { compare: { answer: string; us: number }[]; live: ShadowLive };
}

export interface Step {
  name: keyof Results;
  title: string;
  run(quick: boolean, results: Results, log: (line: string) => void): Promise<void>;
}

/** bench:gateway's counts for --quick here: a few seconds a phase. */
const tiny: Partial<Counts> = {
  warmup: 300,
  latency: 100,
  saturation: 1500,
  cpu: 1500,
  moderate: 600,
  moderateWarmup: 200,
  wrkSeconds: 1,
  idleMs: 200,
  settleMs: 200,
  slices: 1,
};

const gateway = (quick: boolean, args: string[]) =>
  benchGateway(parseOptions([...(quick ? ['--quick'] : []), ...args]), quick ? tiny : {});

export const STEPS: readonly Step[] = [
  {
    name: 'gateway',
    title: 'the gateway beside nginx, the bare relay and the backend itself (bench:gateway)',
    async run(quick, r) {
      // --quick leaves out the moderate phase (a second upstream and set of proxies to start).
      r.gateway = await gateway(quick, quick ? ['--only', 'light,saturation,cpu'] : []);
    },
  },
  {
    name: 'curve',
    title: 'latency against offered load: direct, gateway, nginx, relay (open loop)',
    async run(quick, r, log) {
      const rates = quick ? [100, 400] : [100, 200, 400, 800, 1600, 3200];
      r.curve = await latencyCurve(rates, quick ? 0.5 : 3, log);
    },
  },
  {
    name: 'security',
    title: 'API key and local rate limits (bench:gateway --security keys --only cpu)',
    async run(quick, r) {
      r.security = await gateway(quick, [
        '--only',
        'cpu',
        '--targets',
        'gateway,relay',
        '--security',
        'keys',
      ]);
    },
  },
  {
    name: 'tracing',
    title: 'tracing at 1% and 100% (bench:gateway --trace-ratio R --only cpu)',
    async run(quick, r) {
      r.tracing = [];
      for (const ratio of quick ? [0.01] : [0.01, 1]) {
        const report = await gateway(quick, [
          '--only',
          'cpu',
          '--targets',
          'gateway,relay',
          '--trace-ratio',
          String(ratio),
        ]);
        if (report !== undefined) r.tracing.push({ ratio, report });
      }
    },
  },
  {
    name: 'backend',
    title: 'the backend served beside in-process onnxruntime and a bare route (bench:backend)',
    async run(quick, r) {
      const args = quick
        ? ['--quick', '--only', 'overhead', '--runs', '1', '--warmup', '500']
        : ['--runs', '3'];
      r.backend = (await benchBackend(parseBackendOptions(args)))?.data;
    },
  },
  {
    name: 'fleet',
    title: 'fleet propagation through Redis, and fleet-mode CPU (bench:fleet)',
    async run(quick, r) {
      r.fleet = await benchFleet(
        quick
          ? { applies: 5, gateways: 1, intervalMs: 1, cpuRuns: 2, cpuRequests: 1000 }
          : { applies: 200, gateways: 4, intervalMs: 1 },
      );
    },
  },
  {
    name: 'shadow',
    title: 'shadow comparison in process, and shadowing at 100% live (bench:shadow --live)',
    async run(quick, r) {
      const compare = await shadowCompare(quick ? 30 : 300);
      const live = await shadowLive(
        quick
          ? { rate: 200, perSlice: 50, slices: 2, warmup: 40 }
          : { rate: 100, perSlice: 500, slices: 6, warmup: 200 },
      );
      r.shadow = { compare, live };
    },
  },
];
