// The canary through a real gateway with short steps: real mlp replicas for a healthy rollout,
// fake replicas for a candidate with 5% errors or twice the latency, a fake clock for a starved one.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import type net from 'node:net';
import { after, describe, test } from 'node:test';
import { silentLogger } from '../../common/logging.js';
import { CanaryStateFile } from '../../gateway/rollout/canary-file.js';
import {
  getJson,
  okInfer,
  postJson,
  request,
  sampleValue,
  scrape,
  tempDir,
  waitFor,
} from '../helpers/backend.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { gatewayTestbed, mlpBody, policyYaml, type RunningGateway } from '../helpers/gateway.js';

const bed = gatewayTestbed({ v1: [{ name: 'mlp', version: '1' }], v2: [{ name: 'mlp', version: '2' }] });

interface CanaryJson {
  state: string;
  step: number;
  weight: number;
  reason: string | null;
  samples: { canary: { requests: number }; baseline: { requests: number } };
  lastJudgement: { verdict: string; reason?: string } | null;
  history: { event: string; step: number; weight: number }[];
}

async function canaryView(gw: RunningGateway): Promise<CanaryJson> {
  const r = await getJson(gw.adminUrl, '/admin/canary/m');
  assert.equal(r.status, 200, r.body.toString());
  return r.json as CanaryJson;
}

/** Sends requests, `parallel` at a time, until the rollout has ended (or the wait times out). */
async function driveUntilEnded(gw: RunningGateway, parallel = 4, timeoutMs = 60_000): Promise<CanaryJson> {
  let ended: CanaryJson | undefined;
  const deadline = performance.now() + timeoutMs;
  let i = 0;
  const worker = async () => {
    while (ended === undefined && performance.now() < deadline) {
      await postJson(gw.url, '/v2/models/m/infer', JSON.parse(mlpBody(i++ % 50)));
    }
  };
  const watcher = async () => {
    ended = await waitFor(
      'the rollout to end',
      async () => {
        const v = await canaryView(gw);
        return v.state === 'promoted' || v.state === 'rolled_back' ? v : undefined;
      },
      timeoutMs,
    );
  };
  await Promise.all([watcher(), ...Array.from({ length: parallel }, worker)]);
  return ended as unknown as CanaryJson;
}

/** A replica that answers 502 to every `errorEvery`-th request and 200 to the others, after `delayMs`. */
async function countingReplica(errorEvery: number, delayMs = 0): Promise<string> {
  let n = 0;
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      n += 1;
      const fail = errorEvery > 0 && n % errorEvery === 0;
      const answer = () =>
        res
          .writeHead(fail ? 502 : 200, { 'content-type': 'application/json' })
          .end(fail ? '{"error":"fake"}' : '{"model_name":"fake","outputs":[]}');
      if (delayMs > 0) setTimeout(answer, delayMs);
      else answer();
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
}

function canaryPolicy(
  stable: string,
  candidate: string,
  canary: Record<string, unknown>,
  versions = false,
): string {
  return policyYaml({
    variants: {
      stable: { endpoints: [stable], ...(versions ? { version: '1' } : {}) },
      candidate: { endpoints: [candidate], ...(versions ? { version: '2' } : {}) },
    },
    split: { stable: 1 },
    retries: { attempts: 0 },
    defaults: { healthCheck: { intervalMs: 0 }, outlierDetection: { consecutiveFailures: 1000 } },
    modelKeys: {
      canary: {
        variant: 'candidate',
        baseline: 'stable',
        maxErrorRateIncrease: 0.01,
        maxLatencyIncreasePercent: 20,
        ...canary,
      },
    },
  });
}

describe('canary rollout', () => {
  test('a healthy candidate (mlp v2 against v1) reaches 100% through every step', async () => {
    const gw = await bed.gateway({
      policy: canaryPolicy(
        bed.endpoint('v1').url,
        bed.endpoint('v2').url,
        { steps: [20, 50, 100], stepSeconds: 0.3, minSamples: 30, maxLatencyIncreasePercent: 100 },
        true,
      ),
    });
    assert.equal((await canaryView(gw)).weight, 20);
    const end = await driveUntilEnded(gw);
    assert.equal(end.state, 'promoted', JSON.stringify(end));
    assert.deepEqual(
      end.history.map((e) => [e.event, e.weight]),
      [
        ['started', 20],
        ['advanced', 50],
        ['promoted', 100],
      ],
    );
    const { samples } = await scrape(gw.adminUrl);
    assert.equal(sampleValue(samples, 'infergate_canary_weight', { model: 'm', variant: 'candidate' }), 100);
    assert.equal(sampleValue(samples, 'infergate_canary_weight', { model: 'm', variant: 'stable' }), 0);
    assert.equal(sampleValue(samples, 'infergate_canary_state', { model: 'm', state: 'promoted' }), 1);
    const r = await postJson(gw.url, '/v2/models/m/infer', JSON.parse(mlpBody(1)));
    assert.equal(r.headers.get('x-infergate-variant'), 'candidate', 'all traffic on the candidate');
  });

  test('a candidate answering 5% errors is rolled back within one step', async () => {
    const gw = await bed.gateway({
      policy: canaryPolicy(await countingReplica(0), await countingReplica(20), {
        steps: [50, 100],
        stepSeconds: 0.2,
        minSamples: 400,
      }),
    });
    const end = await driveUntilEnded(gw, 8);
    assert.equal(end.state, 'rolled_back');
    assert.equal(end.step, 0, 'in the first step');
    assert.equal(end.weight, 0);
    assert.match(end.reason ?? '', /^error rate/);
    const { samples } = await scrape(gw.adminUrl);
    assert.equal(
      sampleValue(samples, 'infergate_canary_rollbacks_total', { model: 'm', reason: 'error_rate' }),
      1,
    );
    assert.equal(sampleValue(samples, 'infergate_canary_weight', { model: 'm', variant: 'candidate' }), 0);
    const r = await request(`${gw.url}/v2/models/m/infer`, {
      method: 'POST',
      body: mlpBody(1),
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(r.headers.get('x-infergate-variant'), 'stable');
  });

  test('a candidate twice as slow is rolled back on latency', async () => {
    const gw = await bed.gateway({
      policy: canaryPolicy(await countingReplica(0, 10), await countingReplica(0, 20), {
        steps: [50, 100],
        stepSeconds: 0.2,
        minSamples: 40,
      }),
    });
    const end = await driveUntilEnded(gw, 8);
    assert.equal(end.state, 'rolled_back');
    assert.match(end.reason ?? '', /^latency is more than 20% above/);
    const { samples } = await scrape(gw.adminUrl);
    assert.equal(
      sampleValue(samples, 'infergate_canary_rollbacks_total', { model: 'm', reason: 'latency' }),
      1,
    );
  });

  test('a canary starved of traffic holds instead of promoting', async () => {
    const clock = new FakeClock();
    const gw = await bed.gateway({
      policy: canaryPolicy(
        bed.endpoint('v1').url,
        bed.endpoint('v2').url,
        { steps: [10, 100], stepSeconds: 1, minSamples: 50 },
        true,
      ),
      rolloutClock: clock,
    });
    for (let i = 0; i < 5; i++) await postJson(gw.url, '/v2/models/m/infer', JSON.parse(mlpBody(i)));
    clock.advance(3600_000);
    const v = await canaryView(gw);
    assert.equal(v.state, 'progressing');
    assert.equal(v.weight, 10);
    assert.equal(v.lastJudgement?.verdict, 'hold');
    assert.match(v.lastJudgement?.reason ?? '', /^samples: canary \d, baseline \d of 50 each$/);
    assert.equal(v.samples.canary.requests + v.samples.baseline.requests, 5);
  });

  test('operator commands over the admin port: pause, resume, abort; unknown ones refused', async () => {
    const gw = await bed.gateway({
      policy: canaryPolicy(
        bed.endpoint('v1').url,
        bed.endpoint('v2').url,
        { steps: [10], stepSeconds: 60, minSamples: 50 },
        true,
      ),
    });
    const post = (p: string) => request(`${gw.adminUrl}${p}`, { method: 'POST' });
    assert.equal((await post('/admin/canary/m/pause')).status, 200);
    assert.equal((await canaryView(gw)).state, 'paused');
    const again = await post('/admin/canary/m/pause');
    assert.equal(again.status, 400);
    assert.match((again.json as { error: string }).error, /paused already/);
    assert.equal((await post('/admin/canary/m/resume')).status, 200);
    assert.equal((await post('/admin/canary/m/abort')).status, 200);
    assert.equal((await canaryView(gw)).weight, 0);
    assert.equal((await post('/admin/canary/nope/abort')).status, 404);
    assert.equal((await post('/admin/canary/m/restart')).status, 404);
    const list = (await getJson(gw.adminUrl, '/admin/canary')).json as {
      rollouts: { model: string; state: string }[];
    };
    assert.deepEqual(
      list.rollouts.map((r) => [r.model, r.state]),
      [['m', 'aborted']],
    );
  });

  test('infergate canary status|pause|resume|abort MODEL against the admin port', async () => {
    const gw = await bed.gateway({
      policy: canaryPolicy(
        bed.endpoint('v1').url,
        bed.endpoint('v2').url,
        { steps: [10, 60], stepSeconds: 60, minSamples: 50 },
        true,
      ),
    });
    const run = async (...args: string[]) => {
      const p = bed.cli(['canary', ...args, '--admin', gw.adminUrl]);
      const exit = await p.exited;
      return { code: exit.code, out: p.stdout(), err: p.stderr() };
    };
    const status = await run('status', 'm');
    assert.equal(status.code, 0, status.err);
    assert.match(status.out, /^m: progressing, candidate at 10% against stable \(step 1 of 2: 10, 60\)/);
    assert.equal((await run('pause', 'm')).code, 0);
    const refused = await run('pause', 'm');
    assert.equal(refused.code, 3);
    assert.match(refused.err, /paused already/);
    assert.equal((await run('resume', 'm')).code, 0);
    const abort = await run('abort', 'm', '--json');
    assert.equal(abort.code, 0);
    assert.equal((JSON.parse(abort.out) as { state: string }).state, 'aborted');
    const missing = await run('status', 'nope');
    assert.equal(missing.code, 1);
    assert.match(missing.err, /no canary rollout for model 'nope'/);
    assert.equal((await run('promote')).code, 2);
  });

  test('file mode with a state file: a restarted gateway takes the rollout up at its step', async () => {
    const file = path.join(await tempDir('infergate-canary-'), 'canary.json');
    const policy = canaryPolicy(
      bed.endpoint('v1').url,
      bed.endpoint('v2').url,
      { steps: [10, 50, 80], stepSeconds: 1, minSamples: 3 },
      true,
    );
    const clock = new FakeClock();
    const first = await bed.gateway({
      policy,
      rolloutClock: clock,
      canaryCoordinator: new CanaryStateFile(file, silentLogger()),
    });
    for (let i = 0; i < 3; i++) {
      okInfer(await postJson(first.url, '/v2/models/m/versions/1/infer', JSON.parse(mlpBody(i))));
      okInfer(await postJson(first.url, '/v2/models/m/versions/2/infer', JSON.parse(mlpBody(i))));
    }
    clock.advance(1000);
    assert.equal((await canaryView(first)).weight, 50);
    await first.close(); // waits for the file's last write
    const saved = JSON.parse(await readFile(file, 'utf8')) as {
      rollouts: Record<string, { state: string; step: number }>;
    };
    assert.deepEqual([saved.rollouts.m?.state, saved.rollouts.m?.step], ['progressing', 1]);
    const second = await bed.gateway({
      policy,
      canaryCoordinator: new CanaryStateFile(file, silentLogger()),
    });
    const v = await canaryView(second);
    assert.equal(v.step, 1);
    assert.equal(v.weight, 50);
    assert.deepEqual(
      v.history.map((e) => e.event),
      ['started', 'followed'],
    );
    const { samples } = await scrape(second.adminUrl);
    assert.equal(sampleValue(samples, 'infergate_canary_weight', { model: 'm', variant: 'candidate' }), 50);
  });
});
