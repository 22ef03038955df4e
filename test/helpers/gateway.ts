// Integration-test harness for the gateway: a real gateway on 127.0.0.1:0 with its policy in a
// real file (hot reload through the file watcher), real backends from test/helpers/backend.ts, and
// a fake replica steered by request headers for faults a real replica cannot produce on demand.
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { after, before } from 'node:test';
import type { ModelSelector } from '../../backend/repository.js';
import type { Clock } from '../../common/clock.js';
import type { RandomSource } from '../../gateway/router.js';
import { FilePolicySource } from '../../gateway/policy/file-source.js';
import type { CanaryCoordinator } from '../../gateway/rollout/rollouts.js';
import { buildGateway, type Gateway, type GatewayOptions, type PolicyEvent } from '../../gateway/server.js';
import type { EndpointPoolOptions } from '../../gateway/upstream/endpoint.js';
import {
  randomFloats,
  removeTempDirs,
  type RunningBackend,
  sampleRepository,
  startBackend,
  tempDir,
  xDoc,
} from './backend.js';
import { type CliProcess, runCli } from './cli.js';

export interface RunningGateway {
  gateway: Gateway;
  /** `http://127.0.0.1:PORT` of the ingress. */
  url: string;
  /** `http://127.0.0.1:PORT` of the admin app (metrics, policy, upstreams). */
  adminUrl: string;
  policyPath: string;
  events: PolicyEvent[];
  /** Writes the policy file and resolves with the gateway's verdict on it. */
  writePolicy(text: string, timeoutMs?: number): Promise<PolicyEvent>;
  close(): Promise<void>;
}

export interface StartGatewayOptions {
  policy: string;
  /** Connection pool settings per endpoint (e.g. one connection, to make requests queue). */
  pools?: EndpointPoolOptions;
  bodyLimit?: number;
  random?: RandomSource;
  clock?: Clock;
  /** The canary controllers' clock (a FakeClock steps them without waiting). */
  rolloutClock?: Clock;
  /** Fleet mode for canaries (a CanaryFleet on a test Redis). */
  canaryCoordinator?: CanaryCoordinator;
  /** More options of buildGateway (tracing, audit log, logger). */
  extra?: Partial<Pick<GatewayOptions, 'tracing' | 'audit' | 'logger'>>;
}

export async function startGateway(opts: StartGatewayOptions): Promise<RunningGateway> {
  const dir = await tempDir('infergate-gw-');
  const policyPath = path.join(dir, 'policy.yaml');
  await writeFile(policyPath, opts.policy);
  const events: PolicyEvent[] = [];
  const waiters: ((e: PolicyEvent) => void)[] = [];
  const gateway = await buildGateway({
    policySource: new FilePolicySource(policyPath, { pollMs: 200 }),
    processMetrics: false,
    ...(opts.bodyLimit === undefined ? {} : { bodyLimit: opts.bodyLimit }),
    ...(opts.random === undefined ? {} : { random: opts.random }),
    ...(opts.clock === undefined ? {} : { clock: opts.clock }),
    ...(opts.rolloutClock === undefined ? {} : { rolloutClock: opts.rolloutClock }),
    ...(opts.canaryCoordinator === undefined ? {} : { canaryCoordinator: opts.canaryCoordinator }),
    ...(opts.pools === undefined ? {} : { pools: opts.pools }),
    ...opts.extra,
    onPolicyEvent: (e) => {
      events.push(e);
      for (const w of waiters.splice(0)) w(e);
    },
  });
  const url = await gateway.app.listen({ host: '127.0.0.1', port: 0 });
  const adminUrl = await gateway.admin.listen({ host: '127.0.0.1', port: 0 });
  let closed = false;
  return {
    gateway,
    url,
    adminUrl,
    policyPath,
    events,
    async writePolicy(text, timeoutMs = 5000) {
      const verdict = new Promise<PolicyEvent>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no policy event within ${timeoutMs} ms`)),
          timeoutMs,
        );
        waiters.push((e) => {
          clearTimeout(timer);
          resolve(e);
        });
      });
      // Write to a temp file and rename, as editors do, so the watcher never reads half a file.
      const tmp = `${policyPath}.tmp`;
      await writeFile(tmp, text);
      const { rename } = await import('node:fs/promises');
      await rename(tmp, policyPath);
      return verdict;
    },
    async close() {
      if (closed) return;
      closed = true;
      await gateway.shutdown();
    },
  };
}

/** A port on 127.0.0.1 where nothing listens (taken from the OS, then released). */
export async function deadPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface FakeReplica {
  url: string;
  /** Requests received, in order: method, path and headers. */
  received: { method: string; path: string; headers: http.IncomingHttpHeaders }[];
  /** What it answers when the request does not say (`x-fake-status`, `x-fake-delay-ms`). */
  mode: {
    status: number;
    delayMs: number;
    body: string;
    retryAfter?: string;
    hang?: boolean;
    /** Answers wait for this promise (after `delayMs`): a test holds requests in flight until it says. */
    hold?: Promise<void>;
  };
  /** Resolves with the next request to arrive after the call (fails after `timeoutMs`). */
  nextRequest(timeoutMs?: number): Promise<FakeReplica['received'][number]>;
  /** Resolves once `n` requests in all have arrived (at once when they have). */
  arrived(n: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * A count that tests await instead of polling: `reached(n)` resolves when `add()` has been called
 * `n` times in all, and fails with `what` after `timeoutMs`.
 */
export class Tally {
  count = 0;
  private readonly waiters: { target: number; resolve: () => void }[] = [];

  add(): void {
    this.count += 1;
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const w = this.waiters[i] as { target: number; resolve: () => void };
      if (this.count >= w.target) {
        this.waiters.splice(i, 1);
        w.resolve();
      }
    }
  }

  reached(target: number, what = `${target} events`, timeoutMs = 10_000): Promise<void> {
    if (this.count >= target) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} (${this.count} of ${target})`));
      }, timeoutMs);
      const waiter = {
        target,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      this.waiters.push(waiter);
    });
  }
}

/**
 * A replica steered by its `mode` or by request headers: `x-fake-status` (the status),
 * `x-fake-delay-ms` (answer after this long), `x-fake-hang: 1` (never answer).
 */
export async function startFakeReplica(mode: Partial<FakeReplica['mode']> = {}): Promise<FakeReplica> {
  const received: FakeReplica['received'] = [];
  const state: FakeReplica['mode'] = {
    status: 200,
    delayMs: 0,
    body: '{"model_name":"fake","model_version":"1","outputs":[]}',
    ...mode,
  };
  const sockets = new Set<net.Socket>();
  const arrivals = new Tally();
  const server = http.createServer((req, res) => {
    received.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers });
    arrivals.add();
    req.resume();
    req.on('end', () => {
      if (req.headers['x-fake-hang'] === '1' || state.hang === true) return;
      const status = Number(req.headers['x-fake-status'] ?? state.status);
      const delay = Number(req.headers['x-fake-delay-ms'] ?? state.delayMs);
      const answer = () => {
        const body =
          status >= 400
            ? JSON.stringify({ error: `fake ${status}`, code: `BE_ERR_FAKE_${status}` })
            : state.body;
        const headers: Record<string, string> = { 'content-type': 'application/json' };
        if (status === 503 && state.retryAfter !== undefined) headers['retry-after'] = state.retryAfter;
        res.writeHead(status, headers).end(body);
      };
      const held = state.hold;
      const go = held === undefined ? answer : () => void held.then(answer);
      if (delay > 0) setTimeout(go, delay);
      else go();
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    mode: state,
    async nextRequest(timeoutMs = 10_000) {
      const n = arrivals.count + 1;
      await arrivals.reached(n, 'a request at the fake replica', timeoutMs);
      // The n-th arrival (counted even when a test empties `received`).
      return received[received.length - 1 - (arrivals.count - n)] as FakeReplica['received'][number];
    },
    arrived(n, timeoutMs = 10_000) {
      return arrivals.reached(n, `${n} requests at the fake replica`, timeoutMs);
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A policy with one model `m` whose variants each sit on their own backend. */
export function policyYaml(spec: {
  variants: Record<string, { endpoints: string[]; model?: string; version?: string }>;
  split?: Record<string, number>;
  sticky?: string;
  routes?: { header: string; value: string; variant: string }[];
  timeoutMs?: number;
  retries?: { attempts?: number; budgetPercent?: number; backoffMs?: number };
  model?: string;
  /** More keys of `defaults`, e.g. `{ healthCheck: { intervalMs: 0 } }`. */
  defaults?: Record<string, unknown>;
  /** More keys of the model, e.g. `{ concurrency: { maxInFlight: 2 } }`. */
  modelKeys?: Record<string, unknown>;
  /** Top-level `limits`. */
  limits?: Record<string, unknown>;
}): string {
  const name = spec.model ?? 'm';
  const lines = ['version: 1', 'defaults:', `  timeoutMs: ${spec.timeoutMs ?? 2000}`];
  if (spec.retries !== undefined) lines.push(`  retries: ${JSON.stringify(spec.retries)}`);
  for (const [k, v] of Object.entries(spec.defaults ?? {})) lines.push(`  ${k}: ${JSON.stringify(v)}`);
  if (spec.limits !== undefined) lines.push(`limits: ${JSON.stringify(spec.limits)}`);
  lines.push('backends:');
  for (const [v, def] of Object.entries(spec.variants)) {
    lines.push(`  be-${v}: { endpoints: ${JSON.stringify(def.endpoints)} }`);
  }
  lines.push('models:', `  ${name}:`, '    variants:');
  for (const [v, def] of Object.entries(spec.variants)) {
    const version = def.version === undefined ? '' : `, version: "${def.version}"`;
    lines.push(`      ${v}: { backend: be-${v}, model: ${def.model ?? 'mlp'}${version} }`);
  }
  if (spec.split !== undefined) lines.push(`    split: ${JSON.stringify(spec.split)}`);
  if (spec.sticky !== undefined) lines.push(`    sticky: { header: ${spec.sticky} }`);
  for (const [k, v] of Object.entries(spec.modelKeys ?? {})) lines.push(`    ${k}: ${JSON.stringify(v)}`);
  if (spec.routes !== undefined) {
    lines.push('    routes:');
    for (const r of spec.routes) {
      lines.push(
        `      - match: { headers: { ${r.header}: ${JSON.stringify(r.value)} } }`,
        `        variant: ${r.variant}`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}

/** A JSON inference body for `mlp` (x: FP32 [1,64]) from a seed. */
export function mlpBody(seed: number): string {
  return JSON.stringify(xDoc(randomFloats(seed, 64)));
}

export interface Testbed {
  /** The sample model repository the replicas serve. */
  readonly repo: string;
  /** A replica started in `before`, by the name given to `gatewayTestbed`. */
  replica(name: string): RunningBackend;
  /**
   * The URL of that replica, read when used: for module-level constants, which exist before the
   * replicas start in `before`.
   */
  endpoint(name: string): { readonly url: string };
  /** Starts a gateway, closed in `after`. */
  gateway(opts: StartGatewayOptions): Promise<RunningGateway>;
  /** Starts a fake replica, closed in `after`. */
  fake(mode?: Partial<FakeReplica['mode']>): Promise<FakeReplica>;
  /** Runs `infergate ARGS`, killed in `after` if still running. */
  cli(args: string[], env?: Record<string, string | undefined>): CliProcess;
}

/**
 * Registers `before` and `after` hooks for a test file: the sample repository, real replicas
 * serving the listed models, and cleanup of every gateway, fake replica and CLI process made.
 */
export function gatewayTestbed(replicas: Record<string, readonly ModelSelector[]>): Testbed {
  let repo = '';
  const running = new Map<string, RunningBackend>();
  const closers: (() => Promise<unknown>)[] = [];
  before(async () => {
    repo = await sampleRepository();
    for (const [name, models] of Object.entries(replicas)) {
      running.set(name, await startBackend({ modelRepository: repo, models }));
    }
  });
  after(async () => {
    await Promise.all(closers.splice(0).map((c) => c()));
    await Promise.all([...running.values()].map((r) => r.close()));
    await removeTempDirs();
  });
  const replica = (name: string): RunningBackend => {
    const r = running.get(name);
    if (r === undefined) throw new Error(`no replica '${name}'`);
    return r;
  };
  return {
    get repo() {
      return repo;
    },
    replica,
    endpoint(name) {
      return {
        get url() {
          return replica(name).url;
        },
      };
    },
    async gateway(opts) {
      const g = await startGateway(opts);
      closers.push(() => g.close());
      return g;
    },
    async fake(mode) {
      const f = await startFakeReplica(mode);
      closers.push(() => f.close());
      return f;
    },
    cli(args, env) {
      const p = runCli(args, env);
      closers.push(() => p.stop());
      return p;
    },
  };
}
