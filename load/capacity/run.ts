/**
 * `npm run bench:capacity`: the open-loop sweep (sweep.ts) of each model through one gateway in
 * front of one backend, the knee of each as a table, and the JSON file. Progress on stderr.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { machine } from '../common.js';
import { fmt, table } from '../lib.js';
import { CAPACITY_MODELS, type CapacityModel, startStack } from './setup.js';
import { type Sweep, type SweepOptions, sweep } from './sweep.js';

export interface CapacityOptions {
  quick: boolean;
  models: readonly CapacityModel[];
  sweep: Record<CapacityModel, SweepOptions>;
}

export function parseCapacityOptions(argv: readonly string[]): CapacityOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      quick: { type: 'boolean', default: false },
      models: { type: 'string', default: CAPACITY_MODELS.join(',') },
      'p99-ms': { type: 'string', default: '50' },
      'step-seconds': { type: 'string' },
      factor: { type: 'string' },
    },
  });
  const models = values.models.split(',').map((m) => m.trim());
  for (const m of models) {
    if (!CAPACITY_MODELS.includes(m as CapacityModel)) {
      throw new Error(`--models: unknown '${m}' (one of ${CAPACITY_MODELS.join(', ')})`);
    }
  }
  const num = (flag: string, text: string | undefined, fallback: number, min: number, max: number) => {
    const n = text === undefined ? fallback : Number(text);
    if (!(n >= min && n <= max)) throw new Error(`--${flag} must be in [${min}, ${max}]`);
    return n;
  };
  const q = values.quick;
  const common = {
    p99Ms: num('p99-ms', values['p99-ms'], 50, 1, 10_000),
    stepSeconds: num('step-seconds', values['step-seconds'], q ? 2 : 5, 0.5, 120),
    factor: num('factor', values.factor, q ? 1.6 : 1.25, 1.05, 4),
    maxSteps: 40,
    refine: q ? 0 : 2,
    maxInFlight: 256,
  };
  return {
    quick: q,
    models: models as CapacityModel[],
    sweep: { simple: { ...common, startRate: 100 }, 'mlp-large': { ...common, startRate: 100 } },
  };
}

export interface CapacityResult {
  date: string;
  machine: ReturnType<typeof machine>;
  loadAverage: { before: number[]; after: number[] };
  options: CapacityOptions;
  sweeps: Sweep[];
}

export function capacityTable(sweeps: readonly Sweep[], p99Ms: number): string {
  return (
    table(
      [
        'model',
        'knee req/s',
        'p99 ms',
        'gateway cores',
        'backend cores',
        'client cores',
        'req/s per gateway core',
        'req/s per backend core',
      ],
      sweeps.map((s) => {
        const k = s.knee;
        return k === undefined
          ? [s.model, `none (broke at ${s.steps[0]?.rate ?? '-'})`, '-', '-', '-', '-', '-', '-']
          : [
              s.model,
              k.achievedRps,
              k.p99Ms,
              k.gatewayCores,
              k.backendCores,
              k.clientCores,
              fmt(s.perGatewayCore!),
              fmt(s.perBackendCore!),
            ];
      }),
    ) + `\n  knee: the highest open-loop rate whose p99 stayed <= ${p99Ms} ms with <= 1% failed or dropped\n`
  );
}

/** Runs the sweeps; `log` gets progress lines (stderr by default). */
export async function benchCapacity(
  o: CapacityOptions,
  log: (line: string) => void = (l) => process.stderr.write(`${l}\n`),
): Promise<CapacityResult> {
  const work = await mkdtemp(join(tmpdir(), 'infergate-bench-capacity-'));
  const before = loadavg();
  try {
    const stack = await startStack(work);
    try {
      const sweeps: Sweep[] = [];
      for (const model of o.models) {
        log(
          `capacity ${model}: open loop from ${o.sweep[model].startRate} req/s, x${o.sweep[model].factor} a step`,
        );
        sweeps.push(
          await sweep(stack, model, o.sweep[model], (s) =>
            log(
              `  ${model} ${s.rate} req/s: p99 ${fmt(s.p99Ms)} ms, ${fmt(s.achievedRps)} answers/s, ` +
                `gateway ${fmt(s.gatewayCores)} cores, backend ${fmt(s.backendCores)}${s.held ? '' : `: broke (${s.broke})`}`,
            ),
          ),
        );
      }
      return {
        date: new Date().toISOString(),
        machine: machine(),
        loadAverage: { before, after: loadavg() },
        options: o,
        sweeps,
      };
    } finally {
      await stack.stop();
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
