// The real `infergate backend` command in a child process: startup on port 0, usage errors, and a
// graceful SIGTERM drain with requests in flight.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { mlpLargeReference, mlpReference } from '../../models/reference.js';
import {
  assertClose,
  derivedRepository,
  infer,
  okInfer,
  output,
  randomFloats,
  removeTempDirs,
  sampleRepository,
  sampleValue,
  scrape,
  waitFor,
  xDoc,
} from '../helpers/backend.js';
import { type CliProcess, runCli, startCliBackend } from '../helpers/cli.js';

const TOL = 1e-5;
let sample: string;
const procs: CliProcess[] = [];

before(async () => {
  sample = await sampleRepository();
});

after(async () => {
  await Promise.all(procs.map((p) => p.stop()));
  await removeTempDirs();
});

/** Whether a fresh request to `url` is refused or answered 503 (anything but a 200). */
async function notServing(url: string): Promise<string> {
  try {
    const res = await fetch(url);
    await res.arrayBuffer();
    assert.notEqual(res.status, 200, `${url} must not answer 200 while draining`);
    return `status ${res.status}`;
  } catch (e) {
    return `refused (${((e as Error).cause as { code?: string } | undefined)?.code ?? (e as Error).message})`;
  }
}

describe('infergate backend (process)', () => {
  test('an unknown flag exits 2 with the usage on stderr', async () => {
    const proc = runCli(['backend', '--model-repository', sample, '--no-such-flag']);
    procs.push(proc);
    const exit = await proc.exited;
    assert.deepEqual(exit, { code: 2, signal: null });
    assert.match(proc.stderr(), /--no-such-flag/);
    assert.match(proc.stderr(), /infergate backend --model-repository DIR/);
    assert.equal(proc.stdout(), '', 'nothing on stdout');
  });

  test('missing --model-repository and a bad --device or --port exit 2', async () => {
    const cases: [string[], RegExp][] = [
      [['backend'], /--model-repository DIR is required/],
      [
        ['backend', '--model-repository', sample, '--device', 'tpu'],
        /--device must be one of cpu, cuda, webgpu/,
      ],
      [['backend', '--model-repository', sample, '--port', '70000'], /--port must be a port number/],
    ];
    const runs = cases.map(([args]) => {
      const p = runCli(args, { INFERGATE_MODEL_REPOSITORY: undefined });
      procs.push(p);
      return p;
    });
    const exits = await Promise.all(runs.map((p) => p.exited));
    exits.forEach((exit, i) => {
      assert.equal(exit.code, 2, `${cases[i]![0].join(' ')}: ${runs[i]!.stderr()}`);
      assert.match(runs[i]!.stderr(), cases[i]![1]);
    });
  });

  test('an empty INFERGATE_MODEL_REPOSITORY counts as unset: exit 2, not a repository at ""', async () => {
    const proc = runCli(['backend', '--port', '0'], { INFERGATE_MODEL_REPOSITORY: '' });
    procs.push(proc);
    assert.deepEqual(await proc.exited, { code: 2, signal: null });
    assert.match(proc.stderr(), /--model-repository DIR is required/);
  });

  test('empty INFERGATE_HOST, _DEVICE, _BODY_LIMIT and _DRAIN_TIMEOUT_MS count as unset: the defaults', async () => {
    const repo = await derivedRepository(sample, { mlp: { from: 'mlp', versions: ['1'], config: {} } });
    const proc = runCli(['backend', '--model-repository', repo, '--port', '0'], {
      INFERGATE_HOST: '',
      INFERGATE_DEVICE: '',
      INFERGATE_BODY_LIMIT: '',
      INFERGATE_DRAIN_TIMEOUT_MS: '',
    });
    procs.push(proc);
    const line = await proc.waitForLog('listening', (r) => r.msg.startsWith('backend listening on'));
    assert.match(String(line.address), /^http:\/\/127\.0\.0\.1:\d+$/);
    const meta = (await (await fetch(`${line.address as string}/v2/models/mlp`)).json()) as {
      parameters: { execution_provider: string };
    };
    assert.equal(meta.parameters.execution_provider, 'cpu');
  });

  test('a model repository that does not exist exits 1 with the reason', async () => {
    const proc = runCli(['backend', '--model-repository', `${sample}/does-not-exist`, '--port', '0']);
    procs.push(proc);
    assert.equal((await proc.exited).code, 1);
    assert.match(proc.stderr(), /does-not-exist/);
  });

  test('SIGTERM drains: in-flight requests answer 200, readiness drops, the process exits 0', async () => {
    // mlp-large waits up to 2.5 s for a full batch of 64 rows.
    const repo = await derivedRepository(sample, {
      'mlp-large': {
        from: 'mlp-large',
        versions: ['1'],
        config: { max_batch_size: 64, max_queue_delay_ms: 2500 },
      },
      mlp: { from: 'mlp', versions: ['1'], config: { max_batch_size: 8 } },
    });
    const { proc, url } = await startCliBackend(repo);
    procs.push(proc);
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal((await fetch(`${url}/v2/health/ready`)).status, 200);
    const probe = randomFloats(1, 64);
    assertClose(
      output(okInfer(await infer(url, 'mlp', xDoc(probe))), 'y').data as number[],
      mlpReference('1', probe, 1),
      TOL,
    );

    // Seven 8-row requests (56 rows) wait for company that never comes: they are reliably in
    // flight (queued) when the signal arrives.
    const jobs = Array.from({ length: 7 }, (_, i) => ({ rows: 8, x: randomFloats(10 + i, 8 * 512) }));
    const inflight = jobs.map((j) => infer(url, 'mlp-large', xDoc(j.x, [j.rows, j.x.length / j.rows])));
    await waitFor('all seven requests to be queued', async () => {
      const { samples } = await scrape(url);
      return sampleValue(samples, 'infergate_backend_queue_depth', { model: 'mlp-large', version: '1' }) === 7
        ? true
        : undefined;
    });

    assert.ok(proc.child.kill('SIGTERM'));
    await proc.waitForLog('draining', (r) => r.msg === 'draining' && r.signal === 'SIGTERM');
    const whileDraining = await notServing(`${url}/v2/health/ready`);

    const answers = await Promise.all(inflight);
    answers.forEach((res, i) => {
      const y = output(okInfer(res), 'y');
      assert.deepEqual(y.shape, [jobs[i]!.rows, 10]);
      // The first rows against the reference (the full 64-row reference is slow in TypeScript).
      const rows = Math.min(jobs[i]!.rows, 2);
      assertClose(
        (y.data as number[]).slice(0, rows * 10),
        mlpLargeReference(jobs[i]!.x.subarray(0, rows * 512), rows),
        TOL,
        `in-flight request ${i}`,
      );
    });

    const exit = await proc.exited;
    assert.deepEqual(exit, { code: 0, signal: null }, proc.stderr());
    assert.ok(
      proc.logs.some((r) => r.msg === 'drained; exiting'),
      'the drain completed',
    );
    const afterExit = await notServing(`${url}/v2/health/ready`);
    assert.match(afterExit, /^refused/, 'no new connections after exit');
    assert.ok(whileDraining.length > 0);
  });

  test('a drain that outlasts --drain-timeout-ms exits 1', async () => {
    const repo = await derivedRepository(sample, {
      mlp: { from: 'mlp', versions: ['1'], config: { max_batch_size: 64, max_queue_delay_ms: 20_000 } },
    });
    const { proc, url } = await startCliBackend(repo, ['--drain-timeout-ms', '300']);
    procs.push(proc);
    // This request waits 20 s for company: the drain cannot finish within 300 ms.
    const stuck = infer(url, 'mlp', xDoc(randomFloats(60, 64))).then(
      (res) => `status ${res.status}`,
      (e: Error) => `failed: ${e.message}`,
    );
    await waitFor('the request to be queued', async () => {
      const { samples } = await scrape(url);
      return sampleValue(samples, 'infergate_backend_queue_depth', { model: 'mlp', version: '1' }) === 1
        ? true
        : undefined;
    });
    proc.child.kill('SIGTERM');
    const timedOut = await proc.waitForLog('drain timed out', (r) => r.msg === 'drain timed out');
    assert.equal(timedOut.timeoutMs, 300);
    assert.deepEqual(await proc.exited, { code: 1, signal: null });
    assert.ok(!proc.logs.some((r) => r.msg === 'drained; exiting'));
    assert.match(await stuck, /^failed/, 'the cut-short request gets no answer');
  });

  test('SIGTERM on an idle replica exits 0 at once', async () => {
    const repo = await derivedRepository(sample, { mlp: { from: 'mlp', versions: ['1'], config: {} } });
    const { proc, url } = await startCliBackend(repo);
    procs.push(proc);
    assert.equal((await fetch(`${url}/v2/health/live`)).status, 200);
    proc.child.kill('SIGTERM');
    assert.deepEqual(await proc.exited, { code: 0, signal: null });
    assert.match(await notServing(`${url}/v2/health/live`), /^refused/);
  });
});
