// `infergate batch` against a real gateway and real backends: a 10,000-line file answered exactly
// once and equal to online answers; a run killed with SIGKILL and resumed by the same command; bad
// lines reported, not fatal; a changed input refused; a backend killed mid-run with no line lost;
// a batch job beside online load, with the online requests admitted first.
import assert from 'node:assert/strict';
import { appendFile, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { postJson, randomFloats, sampleValue, scrape, tempDir, xDoc } from '../helpers/backend.js';
import { type CliProcess, startCliBackend } from '../helpers/cli.js';
import { gatewayTestbed, mlpBody, policyYaml } from '../helpers/gateway.js';

const bed = gatewayTestbed({
  a: [{ name: 'simple' }, { name: 'mlp', version: '1' }],
  b: [{ name: 'mlp', version: '1' }],
});

interface OutLine {
  line: number;
  id?: string;
  model_version?: string;
  variant?: string;
  outputs?: { name: string; shape?: number[]; data: number[] }[];
  error?: { code: string; message: string };
}

function simpleDoc(i: number) {
  const a = Array.from({ length: 16 }, (_, k) => (i * 7 + k) % 1000);
  const b = Array.from({ length: 16 }, (_, k) => (i * 3 + k * 5) % 100);
  return {
    inputs: [
      { name: 'INPUT0', shape: [1, 16], datatype: 'INT32', data: a },
      { name: 'INPUT1', shape: [1, 16], datatype: 'INT32', data: b },
    ],
  };
}

async function readOut(file: string): Promise<OutLine[]> {
  const text = await readFile(file, 'utf8');
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as OutLine);
}

/** Every line of `lines` answered once, in order. */
function assertExactlyOnce(out: OutLine[], lines: number[]): void {
  assert.deepEqual(
    out.map((o) => o.line),
    lines,
    'each line answered once, in input order',
  );
}

/** Resolves once the batch process prints a progress line with at least `min` lines done. */
function progressed(proc: CliProcess, min: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (c: Buffer) => {
      text += c.toString('utf8');
      for (const m of text.matchAll(/batch: (\d+) lines/g)) {
        if (Number(m[1]) >= min) {
          proc.child.stderr?.off('data', onData);
          resolve();
          return;
        }
      }
    };
    proc.child.stderr?.on('data', onData);
    void proc.exited.then(() => reject(new Error(`batch exited before ${min} lines:\n${proc.stderr()}`)));
  });
}

function batchArgs(url: string, model: string, input: string, output: string, extra: string[] = []) {
  return ['batch', '--url', url, '--model', model, '--input', input, '--output', output, ...extra];
}

async function mlpFile(dir: string, n: number): Promise<string> {
  const file = path.join(dir, 'in.jsonl');
  const lines: string[] = [];
  for (let i = 0; i < n; i++) lines.push(mlpBody(i));
  await writeFile(file, `${lines.join('\n')}\n`);
  return file;
}

describe('infergate batch', () => {
  test('a 10,000-line file: every line answered once, in order, equal to the online answers', async () => {
    const g = await bed.gateway({
      policy: policyYaml({
        model: 'simple',
        variants: { v: { endpoints: [bed.endpoint('a').url], model: 'simple' } },
      }),
    });
    const dir = await tempDir();
    const input = path.join(dir, 'in.jsonl');
    const n = 10_000;
    const docs = Array.from({ length: n }, (_, i) => simpleDoc(i));
    await writeFile(input, `${docs.map((d) => JSON.stringify(d)).join('\n')}\n`);
    const output = path.join(dir, 'out.jsonl');
    const proc = bed.cli(batchArgs(g.url, 'simple', input, output, ['--concurrency', '16', '--json']));
    const exit = await proc.exited;
    assert.equal(exit.code, 0, proc.stderr());
    const summary = JSON.parse(proc.stdout().trim().split('\n').pop() as string);
    assert.equal(summary.complete, true);
    assert.equal(summary.counts.lines, n);
    assert.equal(summary.counts.ok, n);
    assert.deepEqual(summary.counts.variants, { v: n });
    const out = await readOut(output);
    assertExactlyOnce(
      out,
      docs.map((_, i) => i + 1),
    );
    const ids = new Set(out.map((o) => o.id));
    assert.equal(ids.size, n, 'each answer has its own request id');
    for (const o of out) {
      const d = docs[o.line - 1] as ReturnType<typeof simpleDoc>;
      const [a, b] = [d.inputs[0]?.data as number[], d.inputs[1]?.data as number[]];
      const sum = o.outputs?.find((x) => x.name === 'OUTPUT0')?.data;
      assert.deepEqual(
        sum,
        a.map((v, k) => v + (b[k] as number)),
        `line ${o.line}`,
      );
    }
    // The same lines sent online give the same outputs.
    for (const line of [1, 2, 777, 5000, n]) {
      const res = await postJson(g.url, '/v2/models/simple/infer', docs[line - 1]);
      assert.equal(res.status, 200);
      const online = JSON.parse(res.body.toString('utf8'));
      assert.deepEqual(out[line - 1]?.outputs, online.outputs, `line ${line}`);
    }
    // Run again: the checkpoint says it is done, nothing is sent and the output stays.
    const again = bed.cli(batchArgs(g.url, 'simple', input, output));
    assert.equal((await again.exited).code, 0, again.stderr());
    assert.equal((await readOut(output)).length, n);
  });

  test('killed with SIGKILL mid-way, the same command completes it with every line once', async () => {
    const g = await bed.gateway({
      policy: policyYaml({ variants: { v: { endpoints: [bed.endpoint('a').url] } } }),
    });
    const dir = await tempDir();
    const n = 3000;
    const input = await mlpFile(dir, n);
    const output = path.join(dir, 'out.jsonl');
    const args = batchArgs(g.url, 'm', input, output, ['--concurrency', '4', '--progress-interval-s', '1']);
    const first = bed.cli(args);
    await progressed(first, 200);
    first.child.kill('SIGKILL');
    assert.equal((await first.exited).signal, 'SIGKILL');
    const ckpt = JSON.parse(await readFile(`${output}.ckpt`, 'utf8'));
    assert.equal(ckpt.complete, false, 'the first run was cut off before the end');
    assert.ok(ckpt.watermark.line <= n, `watermark ${ckpt.watermark.line}`);
    const second = bed.cli([...args, '--json']);
    assert.equal((await second.exited).code, 0, second.stderr());
    const out = await readOut(output);
    assertExactlyOnce(
      out,
      Array.from({ length: n }, (_, i) => i + 1),
    );
    assert.ok(out.every((o) => o.error === undefined && o.outputs?.[0]?.name === 'y'));
    const res = await postJson(g.url, '/v2/models/m/infer', xDoc(randomFloats(41, 64)));
    assert.deepEqual(out[41]?.outputs, JSON.parse(res.body.toString('utf8')).outputs, 'line 42 as online');
  });

  test('--unordered --pack 4, killed with SIGKILL mid-way and resumed: every line once', async () => {
    const g = await bed.gateway({
      policy: policyYaml({ variants: { v: { endpoints: [bed.endpoint('a').url] } } }),
    });
    const dir = await tempDir();
    const n = 3000;
    const input = await mlpFile(dir, n);
    const output = path.join(dir, 'out.jsonl');
    const args = batchArgs(g.url, 'm', input, output, [
      '--unordered',
      '--pack',
      '4',
      '--concurrency',
      '4',
      '--progress-interval-s',
      '1',
    ]);
    const first = bed.cli(args);
    await progressed(first, 200);
    first.child.kill('SIGKILL');
    assert.equal((await first.exited).signal, 'SIGKILL');
    const second = bed.cli(args);
    assert.equal((await second.exited).code, 0, second.stderr());
    const out = (await readOut(output)).sort((a, b) => a.line - b.line);
    assertExactlyOnce(
      out,
      Array.from({ length: n }, (_, i) => i + 1),
    );
    assert.ok(out.every((o) => o.error === undefined && o.outputs?.[0]?.data.length === 10));
  });

  test('bad lines are answered with their error and the job goes on; a changed input is refused', async () => {
    const g = await bed.gateway({
      policy: policyYaml({ variants: { v: { endpoints: [bed.endpoint('a').url] } } }),
    });
    const dir = await tempDir();
    const input = path.join(dir, 'in.jsonl');
    const good = mlpBody(1);
    const lines = [
      good,
      '{"inputs": [ broken',
      '',
      '[1, 2, 3]',
      '{"no_inputs": true}',
      JSON.stringify(xDoc(randomFloats(2, 63))),
      good,
    ];
    await writeFile(input, `${lines.join('\n')}\n`);
    const output = path.join(dir, 'out.jsonl');
    const proc = bed.cli(batchArgs(g.url, 'm', input, output, ['--json']));
    assert.equal((await proc.exited).code, 0, proc.stderr());
    const out = await readOut(output);
    assertExactlyOnce(out, [1, 2, 4, 5, 6, 7]);
    assert.deepEqual(
      out.map((o) => o.error?.code ?? 'ok'),
      ['ok', 'BATCH_ERR_BAD_JSON', 'BATCH_ERR_BAD_LINE', 'BATCH_ERR_BAD_LINE', out[4]?.error?.code, 'ok'],
    );
    assert.match(out[4]?.error?.code ?? '', /^BE_ERR_/, 'the backend refused the wrong shape');
    const summary = JSON.parse(proc.stdout().trim().split('\n').pop() as string);
    assert.equal(summary.counts.ok, 2);
    assert.equal(summary.counts.errors.BATCH_ERR_BAD_LINE, 2);

    // --max-errors: stops early, exit 1.
    const strict = bed.cli(
      batchArgs(g.url, 'm', input, path.join(dir, 'strict.jsonl'), ['--max-errors', '1']),
    );
    assert.equal((await strict.exited).code, 1);
    assert.match(strict.stderr(), /stopped before the end \(max-errors\)/);

    // The input changes after the run: refused with its code, the output untouched.
    const before = await stat(output);
    await appendFile(input, `${good}\n`);
    const again = bed.cli(batchArgs(g.url, 'm', input, output));
    assert.equal((await again.exited).code, 1);
    assert.match(
      again.stderr(),
      /BATCH_ERR_INPUT_CHANGED: the input .* changed since the checkpoint .*size went from/,
    );
    assert.equal((await stat(output)).size, before.size);
  });

  test('--pack: lines sent 8 to a request get their own answers, as when sent alone; a bad line fails alone', async () => {
    const g = await bed.gateway({
      policy: policyYaml({ variants: { v: { endpoints: [bed.endpoint('a').url] } } }),
    });
    const dir = await tempDir();
    const input = path.join(dir, 'in.jsonl');
    const n = 400;
    const lines = Array.from({ length: n }, (_, i) => mlpBody(i));
    lines[100] = JSON.stringify(xDoc(randomFloats(5, 63))); // the wrong width: its own pack, refused
    lines[200] = JSON.stringify(xDoc(randomFloats(6, 128), [2, 64])); // two rows in one line
    await writeFile(input, `${lines.join('\n')}\n`);
    const packed = path.join(dir, 'packed.jsonl');
    const alone = path.join(dir, 'alone.jsonl');
    const p1 = bed.cli(batchArgs(g.url, 'm', input, packed, ['--pack', '8', '--concurrency', '4']));
    assert.equal((await p1.exited).code, 0, p1.stderr());
    const p2 = bed.cli(batchArgs(g.url, 'm', input, alone, ['--concurrency', '4']));
    assert.equal((await p2.exited).code, 0, p2.stderr());
    const a = await readOut(packed);
    const b = await readOut(alone);
    assertExactlyOnce(
      a,
      Array.from({ length: n }, (_, i) => i + 1),
    );
    assert.match(a[100]?.error?.code ?? '', /^BE_ERR_/);
    assert.deepEqual(a[200]?.outputs?.[0]?.shape, [2, 10]);
    for (let i = 0; i < n; i++) {
      if (i === 100) continue;
      const x = a[i]?.outputs?.[0]?.data ?? [];
      const y = b[i]?.outputs?.[0]?.data ?? [];
      assert.equal(x.length, y.length, `line ${i + 1}`);
      for (let k = 0; k < x.length; k++)
        assert.ok(
          Math.abs((x[k] as number) - (y[k] as number)) <= 1e-5,
          `line ${i + 1}[${k}]: ${x[k]} vs ${y[k]}`,
        );
    }
    const ids = new Set(a.map((o) => o.id));
    assert.ok(ids.size < n / 4, `lines shared requests (${ids.size} request ids for ${n} lines)`);
  });

  test('a backend killed mid-run: every line still answered, none lost', async () => {
    const victim = await startCliBackend(bed.repo, ['--models', 'mlp:1']);
    try {
      await killBackendMidRun(victim);
    } finally {
      await victim.proc.stop();
    }
  });

  test('beside online load, online requests are admitted first and batch requests are shed', async () => {
    const g = await bed.gateway({
      policy: policyYaml({
        variants: { v: { endpoints: [bed.endpoint('a').url, bed.endpoint('b').url] } },
        modelKeys: {
          concurrency: { maxInFlight: 4, maxQueue: 64, queueTimeoutMs: 10000 },
          batch: { maxShare: 0.5 },
        },
      }),
    });
    const dir = await tempDir();
    const n = 1500;
    const input = await mlpFile(dir, n);
    const output = path.join(dir, 'out.jsonl');
    const proc = bed.cli(
      batchArgs(g.url, 'm', input, output, ['--concurrency', '8', '--progress-interval-s', '1']),
    );
    await progressed(proc, 1);
    const statuses: number[] = [];
    await Promise.all(
      Array.from({ length: 4 }, async (_, c) => {
        for (let i = 0; i < 60; i++) {
          const res = await postJson(g.url, '/v2/models/m/infer', JSON.parse(mlpBody(c * 1000 + i)));
          statuses.push(res.status);
        }
      }),
    );
    assert.equal((await proc.exited).code, 0, proc.stderr());
    assert.deepEqual(
      statuses.filter((s) => s !== 200),
      [],
      'every online request answered',
    );
    const { samples } = await scrape(g.adminUrl);
    assert.ok(
      (sampleValue(samples, 'infergate_batch_shed_total', { model: 'm' }) ?? 0) > 0,
      'batch requests shed',
    );
    for (const reason of ['queue_full', 'queue_timeout'])
      assert.equal(
        sampleValue(samples, 'infergate_shed_total', { model: 'm', scope: 'model', reason }) ?? 0,
        0,
      );
    const out = await readOut(output);
    assertExactlyOnce(
      out,
      Array.from({ length: n }, (_, i) => i + 1),
    );
    assert.ok(out.every((o) => o.error === undefined));
  });
});

async function killBackendMidRun(victim: { proc: CliProcess; url: string }): Promise<void> {
  const g = await bed.gateway({
    policy: policyYaml({
      variants: { v: { endpoints: [victim.url, bed.endpoint('b').url] } },
      defaults: { healthCheck: { intervalMs: 200, timeoutMs: 100 } },
    }),
  });
  const dir = await tempDir();
  const n = 3000;
  const input = await mlpFile(dir, n);
  const output = path.join(dir, 'out.jsonl');
  const proc = bed.cli(
    batchArgs(g.url, 'm', input, output, ['--concurrency', '8', '--progress-interval-s', '1', '--json']),
  );
  await progressed(proc, 100);
  victim.proc.child.kill('SIGKILL');
  await victim.proc.exited;
  assert.equal((await proc.exited).code, 0, proc.stderr());
  const out = await readOut(output);
  assertExactlyOnce(
    out,
    Array.from({ length: n }, (_, i) => i + 1),
  );
  assert.deepEqual(
    out.filter((o) => o.error !== undefined).map((o) => o.error),
    [],
  );
}
