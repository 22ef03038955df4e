// forward's retry loop without sockets: each endpoint's dispatcher is a fake that plays one scripted
// reply (an answer, a connect error, a hang, or a wait in the pool's queue), and time is a fake
// clock, so deadlines and per-try timeouts fire exactly when the test says.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Dispatcher } from 'undici';
import {
  DEFAULT_CIRCUIT_BREAKER,
  DEFAULT_HEALTH_CHECK,
  DEFAULT_OUTLIER_DETECTION,
} from '../../gateway/policy/compile.js';
import type { CompiledRetries } from '../../gateway/policy/compiled.js';
import { type Endpoint, EndpointRegistry } from '../../gateway/upstream/endpoint.js';
import {
  type AttemptOutcome,
  type ForwardContext,
  forward,
  type RetryReason,
} from '../../gateway/upstream/forward.js';
import { RetryBudget } from '../../gateway/upstream/retry-budget.js';
import { FakeClock, flushMicrotasks } from '../helpers/fake-clock.js';

type Reply =
  | { readonly kind: 'answer'; readonly status: number; readonly headers?: Record<string, string> }
  /** Fails before any connection, as a refused or unreachable one does. */
  | { readonly kind: 'connect_error'; readonly code: string }
  /** Connected and sent, never answered. */
  | { readonly kind: 'hang' }
  /** Waits in the pool's queue for a connection; `start()` gives it one. */
  | { readonly kind: 'queued' };

/** One dispatched request, and the controller undici would hand its handler. */
class Call implements Dispatcher.DispatchController {
  aborted = false;
  paused = false;
  reason: Error | null = null;
  started = false;

  constructor(
    readonly options: Dispatcher.DispatchOptions,
    private readonly handler: Dispatcher.DispatchHandler,
  ) {}

  abort(reason: Error): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    if (this.started) this.handler.onResponseError?.(this, reason);
  }

  pause(): void {}
  resume(): void {}

  /** A connection is free: the request goes out (unless it was aborted while it waited). */
  start(): void {
    this.started = true;
    this.handler.onRequestStart?.(this, {});
  }

  play(reply: Reply): void {
    if (reply.kind === 'queued') return;
    if (reply.kind === 'connect_error') {
      const error = Object.assign(new Error(`connect ${reply.code}`), { code: reply.code });
      this.handler.onResponseError?.(this, error);
      return;
    }
    this.start();
    if (reply.kind === 'hang' || this.aborted) return;
    this.handler.onResponseStart?.(this, reply.status, reply.headers ?? {}, '');
    this.handler.onResponseData?.(this, Buffer.from(`{"status":${reply.status}}`));
    this.handler.onResponseEnd?.(this, {});
  }
}

/** A dispatcher that answers every request with `reply`, a turn of the event loop later. */
class FakeDispatcher {
  readonly calls: Call[] = [];

  constructor(private readonly reply: Reply) {}

  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const call = new Call(options, handler);
    this.calls.push(call);
    queueMicrotask(() => call.play(this.reply));
    return true;
  }

  async close(): Promise<void> {}
}

const RETRIES: CompiledRetries = { attempts: 2, budgetPercent: 20, backoffMs: 0, perTryTimeoutMs: 0 };

/**
 * A backend of one endpoint per reply (e0, e1, ...), made by the registry with the fakes injected.
 * The random source is always 0: P2C draws e0 and then e1 and keeps e0 on a tie, so the first
 * attempt goes to e0 and a retry to the first untried endpoint after it.
 */
function bed(...replies: Reply[]) {
  const clock = new FakeClock(1_000_000);
  const fakes = new Map(replies.map((r, i) => [`http://e${i}.test`, new FakeDispatcher(r)]));
  const registry = new EndpointRegistry(
    clock,
    {},
    {},
    { dispatcher: (origin) => fakes.get(origin) as never },
  );
  registry.sync([
    {
      name: 'b',
      endpoints: [...fakes.keys()],
      circuitBreaker: DEFAULT_CIRCUIT_BREAKER,
      healthCheck: { ...DEFAULT_HEALTH_CHECK, intervalMs: 0 },
      outlierDetection: DEFAULT_OUTLIER_DETECTION,
    },
  ]);
  const endpoints = [...registry.all()];
  const dispatchers = [...fakes.values()];
  const budget = new RetryBudget(clock);
  const attempts: string[] = [];
  const retries: string[] = [];
  const ctx: ForwardContext = {
    clock,
    random: () => 0,
    onAttempt: (e: Endpoint, outcome: AttemptOutcome) => attempts.push(`${name(e)} ${outcome}`),
    onRetry: (reason: RetryReason, allowed: boolean) =>
      retries.push(`${reason} ${allowed ? 'allowed' : 'denied'}`),
  };
  const name = (e: Endpoint | undefined) => e?.origin.slice('http://'.length, -'.test'.length);
  const send = (opts: { timeoutMs?: number; retries?: Partial<CompiledRetries> } = {}) =>
    forward(
      {
        method: 'POST',
        path: '/v2/models/m/infer',
        headers: { 'content-type': 'application/json' },
        body: Buffer.from('{"inputs":[]}'),
        endpoints,
        timeoutMs: opts.timeoutMs ?? 1000,
        retries: { ...RETRIES, ...opts.retries },
        budget,
      },
      ctx,
    );
  return { clock, endpoints, dispatchers, budget, attempts, retries, name, send };
}

describe('forward: retries through a fake dispatcher', () => {
  test('a refused connection is retried on another endpoint, and its breaker opens at once', async () => {
    const b = bed({ kind: 'connect_error', code: 'ECONNREFUSED' }, { kind: 'answer', status: 200 });
    const result = await b.send();
    assert.equal(result.kind, 'response');
    assert.equal(result.kind === 'response' && result.status, 200);
    assert.equal(result.kind === 'response' && b.name(result.endpoint), 'e1');
    assert.equal(result.kind === 'response' && result.attempts, 2);
    assert.deepEqual(b.attempts, ['e0 network_error', 'e1 ok']);
    assert.deepEqual(b.retries, ['network_error allowed']);
    const [e0, e1] = b.endpoints as [Endpoint, Endpoint];
    assert.equal(e0.breakerState, 'open', 'fail-fast: one refused connection opens it');
    assert.equal(e0.state(b.clock.now()), 'circuit_open');
    assert.equal(e0.outstanding + e1.outstanding, 0);
    const call = b.dispatchers[1]!.calls[0]!;
    assert.deepEqual(
      { ...call.options, body: String(call.options.body) },
      {
        origin: 'http://e1.test',
        method: 'POST',
        path: '/v2/models/m/infer',
        headers: { 'content-type': 'application/json' },
        body: '{"inputs":[]}',
      },
      'the request goes on as it came, bytes unparsed',
    );
  });

  test('a 503 with Retry-After backs that endpoint off for as long, and is retried on another', async () => {
    const b = bed(
      { kind: 'answer', status: 503, headers: { 'retry-after': '7' } },
      { kind: 'answer', status: 200 },
    );
    const result = await b.send();
    assert.equal(result.kind === 'response' && result.status, 200);
    assert.deepEqual(b.attempts, ['e0 overloaded', 'e1 ok']);
    assert.deepEqual(b.retries, ['overloaded allowed']);
    const [e0] = b.endpoints as [Endpoint];
    const now = b.clock.now();
    assert.equal(e0.state(now), 'backing_off');
    assert.equal(e0.returnsAt(now), now + 7000);
    assert.equal(e0.breakerState, 'closed', 'one 503 is not an error rate');
  });

  test('an attempt past perTryTimeoutMs is abandoned at that instant and retried on another', async () => {
    const b = bed({ kind: 'hang' }, { kind: 'answer', status: 200 });
    const pending = b.send({ timeoutMs: 1000, retries: { perTryTimeoutMs: 100 } });
    await flushMicrotasks();
    const hung = b.dispatchers[0]!.calls[0]!;
    assert.equal(hung.started, true);
    b.clock.advance(99);
    assert.equal(hung.aborted, false);
    b.clock.advance(1);
    assert.equal(hung.aborted, true, 'aborted at perTryTimeoutMs');
    assert.equal((hung.reason as { code?: string }).code, 'INFERGATE_PER_TRY_TIMEOUT');
    const result = await pending;
    assert.equal(result.kind === 'response' && b.name(result.endpoint), 'e1');
    assert.deepEqual(b.attempts, ['e0 timeout', 'e1 ok']);
    assert.deepEqual(b.retries, ['timeout allowed']);
    assert.equal(b.endpoints[0]!.outstanding, 0);
  });

  test('a spent retry budget: no retry, the refusal is counted, and the last answer is the result', async () => {
    const b = bed({ kind: 'answer', status: 503 }, { kind: 'answer', status: 200 });
    // An empty window allows the floor of 10 retries; spend them.
    while (b.budget.tryRetry(RETRIES.budgetPercent));
    const result = await b.send();
    assert.equal(result.kind, 'response');
    assert.equal(result.kind === 'response' && result.status, 503);
    assert.equal(result.kind === 'response' && result.attempts, 1);
    assert.deepEqual(b.attempts, ['e0 overloaded']);
    assert.deepEqual(b.retries, ['overloaded denied']);
    assert.equal(b.dispatchers[1]!.calls.length, 0, 'nothing was sent to the other endpoint');
  });

  test('the deadline holds while the attempt still waits in the pool for a connection', async () => {
    const b = bed({ kind: 'queued' }, { kind: 'answer', status: 200 });
    const pending = b.send({ timeoutMs: 200 });
    await flushMicrotasks();
    const queued = b.dispatchers[0]!.calls[0]!;
    b.clock.advance(200);
    const result = await pending;
    assert.equal(result.kind, 'timeout');
    assert.equal(result.kind === 'timeout' && b.name(result.endpoint), 'e0');
    assert.equal(result.kind === 'timeout' && result.attempts, 1);
    assert.deepEqual(b.attempts, ['e0 timeout']);
    assert.deepEqual(b.retries, [], 'no time is left for a retry');
    const [e0] = b.endpoints as [Endpoint];
    assert.equal(e0.outstanding, 0);
    assert.deepEqual(e0.recent, { requests: 1, failures: 1 }, 'the breaker counts it failed');
    // A connection frees up later: the abandoned request is aborted before anything is sent.
    queued.start();
    assert.equal(queued.aborted, true);
    assert.equal((queued.reason as { code?: string }).code, 'INFERGATE_TIMEOUT');
  });
});
