/**
 * bench:fleet as a function (load/bench-fleet.ts is its CLI; load/bench-all.ts calls it too).
 * See load/bench-fleet.ts for what it measures.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Pool } from 'undici';
import { fleetKeys } from '../../common/redis/keys.js';
import { sha256 } from '../../gateway/fleet/redis-source.js';
import { type AckMessage, RedisPolicyStore } from '../../gateway/fleet/redis-store.js';
import { startRedis } from '../../test/helpers/redis.js';
import { type LatencyStats, latencyStats, machine, median, simpleBody } from '../common.js';
import { type ChildServer, fmt, load, startServer, table } from '../lib.js';

const root = join(import.meta.dirname, '..', '..');

/** The machine's CPU time, busy and all, from /proc/stat (Linux), in clock ticks. */
async function machineTicks(): Promise<{ busy: number; total: number } | undefined> {
  try {
    const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0] ?? '';
    const t = line.trim().split(/\s+/).slice(1).map(Number);
    const total = t.reduce((a, b) => a + b, 0);
    const idle = (t[3] ?? 0) + (t[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}
const cli = join(root, 'bin', 'infergate.js');
const nowMs = () => performance.timeOrigin + performance.now();

function policy(upstream: string, to: 'a' | 'b', n: number): string {
  return `# bench:fleet apply ${n}
version: 1
defaults: { timeoutMs: 2000, healthCheck: { intervalMs: 0 } }
backends:
  be-a: { endpoints: [${upstream}] }
  be-b: { endpoints: [${upstream}] }
models:
  simple:
    variants:
      a: { backend: be-a, model: simple, version: "1" }
      b: { backend: be-b, model: simple, version: "1" }
    split: { a: ${to === 'a' ? 100 : 0}, b: ${to === 'b' ? 100 : 0} }
`;
}

/**
 * A client that sends a request every millisecond or so (one at a time) and notes when each
 * variant first answers: steady traffic that leaves the gateways' event loops mostly idle, as in
 * a fleet, rather than saturating two cores with four closed loops.
 */
class Watcher {
  private readonly pool: Pool;
  private running = true;
  private waiting: { variant: string; resolve: (at: number) => void } | undefined;
  readonly done: Promise<void>;

  constructor(
    url: string,
    private readonly intervalMs: number,
  ) {
    this.pool = new Pool(url, { connections: 1 });
    this.done = this.loop();
  }

  /** Resolves with the arrival time of the first answer from `variant`. */
  firstFrom(variant: string): Promise<number> {
    return new Promise((resolve) => {
      this.waiting = { variant, resolve };
    });
  }

  private async loop(): Promise<void> {
    while (this.running) {
      const res = await this.pool.request({
        path: '/v2/models/simple/infer',
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: simpleBody,
      });
      await res.body.arrayBuffer();
      const at = nowMs();
      const w = this.waiting;
      if (w !== undefined && res.headers['x-infergate-variant'] === w.variant) {
        this.waiting = undefined;
        w.resolve(at);
      }
      if (this.intervalMs > 0) await new Promise((resolve) => setTimeout(resolve, this.intervalMs));
    }
  }

  async close(): Promise<void> {
    this.running = false;
    await this.done;
    await this.pool.close();
  }
}

export interface FleetOptions {
  applies: number;
  gateways: number;
  intervalMs: number;
  /** The CPU comparison: paired runs (5) of this many requests each (10,000). */
  cpuRuns?: number;
  cpuRequests?: number;
}

/** What bench:fleet writes as JSON: the propagation times, and CPU in fleet mode beside file mode. */
export interface FleetReport {
  ackMs: LatencyStats;
  firstAnswerMs: LatencyStats;
  nacks: number;
  cpuFleetOverFile: { median: number; runs: number[] };
  [key: string]: unknown;
}

/** Runs bench:fleet: prints its table, returns its JSON. */
export async function benchFleet(o: FleetOptions): Promise<FleetReport> {
  const { applies, intervalMs } = o;
  const gatewayCount = o.gateways;
  const work = await mkdtemp(join(tmpdir(), 'infergate-bench-fleet-'));
  const redis = await startRedis();
  const children: ChildServer[] = [];
  try {
    const fake = await startServer([
      '--import',
      'tsx',
      join(root, 'load', 'gateway', 'fake-upstream.ts'),
      '0',
    ]);
    children.push(fake);
    const keys = fleetKeys('bench:');
    const seed = join(work, 'seed.yaml');
    await writeFile(seed, policy(fake.url, 'a', 0));
    const gateways: ChildServer[] = [];
    for (let i = 0; i < gatewayCount; i++) {
      const args = [cli, 'gateway', '--redis', redis.url, '--redis-prefix', keys.prefix, '--policy', seed];
      const g = await startServer([
        ...args,
        '--port',
        '0',
        '--admin-port',
        '0',
        '--gateway-id',
        `bench-${i}`,
      ]);
      gateways.push(g);
      children.push(g);
    }
    const cmd = new Redis({ host: '127.0.0.1', port: redis.port });
    const sub = new Redis({ host: '127.0.0.1', port: redis.port });
    const store = new RedisPolicyStore(cmd, keys);
    const acks = new Map<string, (m: AckMessage) => void>();
    await sub.subscribe(keys.gatewayAcks);
    sub.on('message', (_c: string, text: string) => {
      const m = JSON.parse(text) as AckMessage;
      acks.get(`${m.id}:${m.version}`)?.(m);
    });
    const watchers = gateways.map((g) => new Watcher(g.url, intervalMs));
    const ackMs: number[] = [];
    const firstMs: number[] = [];
    let nacks = 0;
    const ticks0 = await machineTicks();
    for (let n = 1; n <= applies; n++) {
      const to = n % 2 === 1 ? 'b' : 'a';
      const text = policy(fake.url, to, n);
      const version = (await store.latestVersion()) + 1;
      const acked = gateways.map(
        (_g, i) => new Promise<AckMessage>((resolve) => acks.set(`bench-${i}:${version}`, resolve)),
      );
      const first = watchers.map((w) => w.firstFrom(to));
      const t0 = nowMs();
      const result = await store.apply({
        source: text,
        sha256: sha256(text),
        author: 'bench',
        message: `apply ${n}`,
      });
      if (result.kind !== 'applied' || result.version !== version)
        throw new Error(`apply ${n}: ${result.kind}`);
      for (const m of await Promise.all(acked)) {
        if (m.result === 'nack') nacks += 1;
        ackMs.push(m.at - t0);
      }
      for (const at of await Promise.all(first)) firstMs.push(at - t0);
      for (let i = 0; i < gatewayCount; i++) acks.delete(`bench-${i}:${version}`);
    }
    const ticks1 = await machineTicks();
    const busy =
      ticks0 === undefined || ticks1 === undefined
        ? undefined
        : (ticks1.busy - ticks0.busy) / Math.max(1, ticks1.total - ticks0.total);
    await Promise.all(watchers.map((w) => w.close()));
    cmd.disconnect();
    sub.disconnect();

    // CPU per request: one fleet gateway beside one file-mode gateway, taking turns.
    const fileGateway = await startServer([
      cli,
      'gateway',
      '--policy',
      seed,
      '--port',
      '0',
      '--admin-port',
      '0',
    ]);
    children.push(fileGateway);
    const fleetGateway = gateways[0]!;
    const cpu = { fleet: [] as number[], file: [] as number[] };
    const url = (g: ChildServer) => `${g.url}/v2/models/simple/infer`;
    for (const g of [fleetGateway, fileGateway])
      await load({
        url: url(g),
        connections: 8,
        amount: Math.round((o.cpuRequests ?? 10_000) / 2),
        body: simpleBody,
      });
    for (let run = 0; run < (o.cpuRuns ?? 5); run++) {
      const order = run % 2 === 0 ? (['fleet', 'file'] as const) : (['file', 'fleet'] as const);
      for (const mode of order) {
        const g = mode === 'fleet' ? fleetGateway : fileGateway;
        const r = await load({
          url: url(g),
          connections: 8,
          amount: o.cpuRequests ?? 10_000,
          body: simpleBody,
          pid: g.pid,
        });
        cpu[mode].push(r.cpuUsPerRequest!);
      }
    }
    const ratios = cpu.fleet.map((f, i) => f / cpu.file[i]!);

    const ack = latencyStats(ackMs);
    const firstAnswer = latencyStats(firstMs);
    process.stdout.write(
      `infergate bench:fleet (${machine().cpu}, ${machine().cores} cores, node ${machine().node}): ` +
        `${gatewayCount} gateway processes, ${applies} applies, ${ackMs.length} acknowledgements (${nacks} NACK), ` +
        `a client per gateway pausing ${intervalMs} ms between requests; the machine was ` +
        `${busy === undefined ? '(unknown)' : `${Math.round(busy * 100)}%`} busy during the applies\n\n` +
        table(
          ['from the store write to', 'p50 ms', 'p99 ms', 'max ms'],
          [
            ['the gateway ACK', fmt(ack.p50Ms), fmt(ack.p99Ms), fmt(ack.maxMs)],
            [
              'the first answer on the new version',
              fmt(firstAnswer.p50Ms),
              fmt(firstAnswer.p99Ms),
              fmt(firstAnswer.maxMs),
            ],
          ],
        ) +
        `\naim: p99 <= 20 ms: ${Math.max(ack.p99Ms, firstAnswer.p99Ms) <= 20 ? 'met' : 'NOT met'}\n` +
        `gateway CPU per request, fleet mode / file mode: ${fmt(median(ratios))}x ` +
        `(runs ${ratios.map(fmt).join(', ')}; fleet ${fmt(median(cpu.fleet))} us, file ${fmt(median(cpu.file))} us, medians of ${o.cpuRuns ?? 5} paired runs)\n`,
    );
    return {
      date: new Date().toISOString(),
      machine: machine(),
      settings: { gateways: gatewayCount, applies, intervalMs },
      machineBusyDuringApplies: busy,
      ackMs: ack,
      firstAnswerMs: firstAnswer,
      nacks,
      cpuUsPerRequest: cpu,
      cpuFleetOverFile: { median: median(ratios), runs: ratios },
    };
  } finally {
    for (const c of children.reverse()) await c.stop().catch(() => {});
    await redis.close();
  }
}
