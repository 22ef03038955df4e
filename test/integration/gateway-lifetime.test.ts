// The lifetime of per-model and per-backend state: a gateway that applies 1,000 policies, each
// with fresh model and backend names and a request to the new model, ends where it started:
// the same heap (within noise), the same timers, handles and metric series, and one model's state.
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import type { PolicySource, PolicyUpdate } from '../../gateway/policy/source.js';
import { buildGateway, type Gateway } from '../../gateway/server.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { deadPort, type FakeReplica, startFakeReplica } from '../helpers/gateway.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** A policy source the test pushes text into; each push is compiled and applied at once. */
class PushSource implements PolicySource {
  private listener: ((u: PolicyUpdate) => void) | undefined;
  constructor(private text: string) {}
  async read(): Promise<PolicyUpdate> {
    return { text: this.text, origin: 'push' };
  }
  watch(onUpdate: (u: PolicyUpdate) => void): void {
    this.listener = onUpdate;
  }
  push(text: string): void {
    this.text = text;
    this.listener?.({ text, origin: 'push' });
  }
  async close(): Promise<void> {}
}

/** Generation i: model m-i on backend live-i (the one fake replica) and s-i on spare-i. */
function policy(i: number, live: string, spare: string): string {
  return [
    'version: 1',
    'defaults: { timeoutMs: 1000, healthCheck: { intervalMs: 0 } }',
    'backends:',
    `  live-${i}: { endpoints: [${live}] }`,
    `  spare-${i}: { endpoints: [${spare}] }`,
    'models:',
    `  m-${i}: { variants: { v: { backend: live-${i}, model: mlp } } }`,
    `  s-${i}: { variants: { v: { backend: spare-${i}, model: mlp } } }`,
    '',
  ].join('\n');
}

describe('state of models and backends that leave the policy', () => {
  let fake: FakeReplica;
  let gateway: Gateway;
  let url: string;
  const clock = new FakeClock(1_000_000);
  let ports: number[] = [];
  // Fresh origins that nothing listens on: 127.0.0.k on a few dead ports.
  const spareOrigin = (i: number) =>
    `http://127.0.0.${2 + (i % 250)}:${ports[Math.floor(i / 250) % ports.length]}`;

  before(async () => {
    fake = await startFakeReplica();
    ports = [await deadPort(), await deadPort(), await deadPort(), await deadPort(), await deadPort()];
  });
  after(async () => {
    await gateway?.shutdown();
    await fake?.close();
  });

  test('1,000 applies with fresh names leave heap, timers, handles and series where they started', async () => {
    const source = new PushSource(policy(0, fake.url, spareOrigin(0)));
    gateway = await buildGateway({ policySource: source, clock, processMetrics: false });
    url = await gateway.app.listen({ host: '127.0.0.1', port: 0 });
    /** Apply generation i, send its model one request, and return the answer's status. */
    const generation = async (i: number) => {
      if (i > 0) source.push(policy(i, fake.url, spareOrigin(i)));
      assert.ok(gateway.snapshot.models.has(`m-${i}`), `generation ${i} applied`);
      const res = await request(`${url}/v2/models/m-${i}/infer`, { method: 'POST', body: '{}' });
      await res.body.dump();
      assert.equal(res.statusCode, 200);
    };
    // Past every grace period (timeouts, queue waits): what left is released.
    const pastGrace = () => clock.advance(10_000);
    const measure = async () => {
      pastGrace();
      // What the test's own fakes record grows with every request: not the gateway's.
      fake.received.length = 0;
      clock.requestedDelays.length = 0;
      gc();
      const text = await gateway.metrics.registry.metrics();
      return {
        heap: process.memoryUsage().heapUsed,
        timers: clock.pendingTimers,
        handles: process.getActiveResourcesInfo().length,
        seriesLines: text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length,
        held: gateway.snapshots.held,
      };
    };

    // Warm-up (JIT, caches, the first connections: about 1.5 MiB that the first few hundred
    // generations settle into), then the baseline.
    for (let i = 0; i < 500; i++) await generation(i);
    const start = await measure();
    for (let i = 500; i < 1500; i++) {
      await generation(i);
      if (i % 100 === 0) {
        pastGrace();
        fake.received.length = 0;
      }
    }
    const end = await measure();

    assert.deepEqual(end.held, { models: 2, leaving: 0 }, 'only the two models of the last policy are held');
    assert.equal(end.timers, start.timers, 'timers');
    assert.equal(end.handles, start.handles, 'active handles');
    assert.equal(end.seriesLines, start.seriesLines, 'metric series');
    const grownMiB = (end.heap - start.heap) / 2 ** 20;
    // A leaked endpoint (pool, breaker) or model (limiter, budget, series) per generation would be
    // a kilobyte or more each: a MiB or more over 1,000 generations.
    assert.ok(grownMiB < 1, `heap grew by ${grownMiB.toFixed(2)} MiB over 1,000 applies`);
  });
});
