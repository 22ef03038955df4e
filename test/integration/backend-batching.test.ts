// Dynamic batching and the queue bound, observed from outside: concurrent HTTP requests, each
// checked against the reference, and the batch-size histogram scraped from /metrics.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type MlpVersion, mlpLargeReference, mlpReference } from '../../models/reference.js';
import {
  assertClose,
  assertErrorBody,
  binaryOutputs,
  derivedRepository,
  histogram,
  infer,
  inferPath,
  leBytes,
  okInfer,
  output,
  postBinary,
  randomFloats,
  removeTempDirs,
  request,
  type Sample,
  type RunningBackend,
  sampleRepository,
  sampleValue,
  scrape,
  startBackend,
  waitFor,
  xDoc,
} from '../helpers/backend.js';

const TOL = 1e-5;
const BATCH = 'infergate_backend_batch_size';
/** Long enough that only a full batch starts one: the batches formed are then deterministic. */
const LONG_DELAY_MS = 20_000;

let sample: RunningBackend;
let batched: RunningBackend;
let bounded: RunningBackend;
let inline: RunningBackend;

before(async () => {
  const repo = await sampleRepository();
  const [batchedRepo, boundedRepo, inlineRepo] = await Promise.all([
    derivedRepository(repo, {
      'mlp-large': {
        from: 'mlp-large',
        versions: ['1'],
        config: { max_batch_size: 16, max_queue_delay_ms: LONG_DELAY_MS },
      },
      mlp: {
        from: 'mlp',
        versions: ['1', '2'],
        config: { max_batch_size: 32, max_queue_delay_ms: LONG_DELAY_MS },
      },
      'text-direction': {
        from: 'text-direction',
        versions: ['1'],
        config: { max_batch_size: 4, max_queue_delay_ms: LONG_DELAY_MS },
      },
      'mlp-merge': { from: 'mlp', versions: ['1'], config: { max_batch_size: 8, max_queue_delay_ms: 300 } },
      'mlp-close': {
        from: 'mlp',
        versions: ['1'],
        config: { max_batch_size: 32, max_queue_delay_ms: LONG_DELAY_MS },
      },
    }),
    derivedRepository(repo, {
      'mlp-large': {
        from: 'mlp-large',
        versions: ['1'],
        config: { max_batch_size: 0, max_queue_size: 1, intra_op_threads: 1 },
      },
      'mlp-hold': {
        from: 'mlp',
        versions: ['1'],
        config: { max_batch_size: 8, max_queue_delay_ms: 1000, max_queue_size: 1 },
      },
    }),
    derivedRepository(repo, {
      'mlp-large': {
        from: 'mlp-large',
        versions: ['1'],
        config: { max_batch_size: 16, max_queue_delay_ms: LONG_DELAY_MS, execution: 'inline' },
      },
      'text-direction': {
        from: 'text-direction',
        versions: ['1'],
        config: { max_batch_size: 8, execution: 'inline' },
      },
      // Small merged tensors: served from a shared slab on the event loop (allocTypedSmall).
      mlp: {
        from: 'mlp',
        versions: ['1'],
        config: { max_batch_size: 6, max_queue_delay_ms: LONG_DELAY_MS, execution: 'inline' },
      },
    }),
  ]);
  [sample, batched, bounded, inline] = await Promise.all([
    startBackend({ modelRepository: repo }),
    startBackend({ modelRepository: batchedRepo }),
    startBackend({ modelRepository: boundedRepo }),
    startBackend({ modelRepository: inlineRepo }),
  ]);
});

after(async () => {
  await Promise.all([sample?.close(), batched?.close(), bounded?.close(), inline?.close()]);
  await removeTempDirs();
});

/** Rows and batches the model of `labels` ran between two scrapes (its batch-size histogram). */
function batchesBetween(
  before: Sample[],
  after: Sample[],
  labels: Record<string, string>,
): { rows: number; batches: number } {
  const a = histogram(after, BATCH, labels);
  const b = histogram(before, BATCH, labels);
  return { rows: a.sum - b.sum, batches: a.count - b.count };
}

/** Sends `count` one-row mlp-large requests at once (inputs from seeds `seed`, `seed + 1`, …) and
 * checks each answer against the reference. */
async function mlpLargeRows(url: string, count: number, seed: number): Promise<void> {
  const inputs = Array.from({ length: count }, (_, i) => randomFloats(seed + i, 512));
  const answers = await Promise.all(inputs.map((x) => infer(url, 'mlp-large', xDoc(x, [1, 512]))));
  answers.forEach((res, i) => {
    assertClose(
      output(okInfer(res), 'y').data as number[],
      mlpLargeReference(inputs[i]!, 1),
      TOL,
      `request ${i}`,
    );
  });
}

describe('dynamic batching', () => {
  test('64 concurrent mlp-large requests fill 4 batches of 16, each answer its own', async () => {
    const labels = { model: 'mlp-large', version: '1' };
    const before = (await scrape(batched.url)).samples;
    const inputs = Array.from({ length: 64 }, (_, i) => randomFloats(1000 + i, 512));
    const answers = await Promise.all(
      inputs.map((x, i) => infer(batched.url, 'mlp-large', xDoc(x, [1, 512], `r${i}`))),
    );
    answers.forEach((res, i) => {
      const doc = okInfer(res);
      assert.equal(doc.id, `r${i}`);
      assertClose(output(doc, 'y').data as number[], mlpLargeReference(inputs[i]!, 1), TOL, `request ${i}`);
    });
    const { samples } = await scrape(batched.url);
    const { rows, batches } = batchesBetween(before, samples, labels);
    assert.equal(rows, 64, 'rows run');
    assert.equal(batches, 4, 'batches run');
    assert.equal(
      sampleValue(samples, `${BATCH}_bucket`, { ...labels, le: '8' }),
      0,
      'no batch under 16 rows',
    );
    assert.equal(sampleValue(samples, 'infergate_backend_queue_depth', labels), 0);
  });

  test('with the sample config (64 rows, 2 ms), concurrent requests are merged and stay correct', async () => {
    const labels = { model: 'mlp-large', version: '1' };
    const before = (await scrape(sample.url)).samples;
    await mlpLargeRows(sample.url, 64, 2000);
    const { rows, batches } = batchesBetween(before, (await scrape(sample.url)).samples, labels);
    assert.equal(rows, 64);
    assert.ok(batches < 64, `requests were merged: ${batches} batches for 64 requests`);
    assert.ok(rows / batches > 1, 'mean batch size above 1');
  });

  test('requests of different batch sizes and versions are split back correctly', async () => {
    const rows = [1, 2, 3, 4, 5, 6, 7, 4]; // 32 rows: exactly one full batch per version
    const jobs = (['1', '2'] as MlpVersion[]).flatMap((version) =>
      rows.map((n, i) => ({ version, n, x: randomFloats(3000 + i + 100 * Number(version), n * 64) })),
    );
    const before = (await scrape(batched.url)).samples;
    const answers = await Promise.all(
      jobs.map((j) => infer(batched.url, 'mlp', xDoc(j.x, [j.n, 64]), j.version)),
    );
    answers.forEach((res, i) => {
      const j = jobs[i]!;
      const doc = okInfer(res);
      assert.equal(doc.model_version, j.version);
      const y = output(doc, 'y');
      assert.deepEqual(y.shape, [j.n, 10]);
      assertClose(y.data as number[], mlpReference(j.version, j.x, j.n), TOL, `v${j.version} rows ${j.n}`);
    });
    const after = (await scrape(batched.url)).samples;
    for (const version of ['1', '2']) {
      assert.deepEqual(
        batchesBetween(before, after, { model: 'mlp', version }),
        { rows: 32, batches: 1 },
        `v${version}`,
      );
    }
  });

  test('text-direction: requests with different H/W are never merged together', async () => {
    const sizes = [
      [48, 192],
      [48, 96],
      [48, 192],
      [32, 96],
      [48, 96],
      [32, 96],
      [48, 192],
      [48, 96],
      [32, 96],
      [48, 192],
      [48, 96],
      [32, 96],
    ] as const;
    const jobs = sizes.map(([h, w], i) => ({ shape: [1, 3, h, w], x: randomFloats(4000 + i, 3 * h * w) }));
    // Each input alone, one at a time, on the sample backend: the expected answers.
    const expected: number[][] = [];
    for (const j of jobs) {
      expected.push(
        output(okInfer(await infer(sample.url, 'text-direction', xDoc(j.x, j.shape))), 'softmax_0.tmp_0')
          .data as number[],
      );
    }
    const labels = { model: 'text-direction', version: '1' };
    const before = (await scrape(batched.url)).samples;
    const answers = await Promise.all(
      jobs.map((j) => infer(batched.url, 'text-direction', xDoc(j.x, j.shape))),
    );
    answers.forEach((res, i) => {
      const p = output(okInfer(res), 'softmax_0.tmp_0');
      assert.deepEqual(p.shape, [1, 2]);
      assertClose(p.data as number[], expected[i]!, TOL, `request ${i} ${jobs[i]!.shape}`);
    });
    // 4 of each size and max_batch_size 4: one full batch per size, nothing mixed.
    assert.deepEqual(batchesBetween(before, (await scrape(batched.url)).samples, labels), {
      rows: 12,
      batches: 3,
    });
  });

  test('a batch that cannot grow runs at once instead of waiting out max_queue_delay_ms', async () => {
    const labels = { model: 'mlp-close', version: '1' };
    const depth = async () =>
      sampleValue((await scrape(batched.url)).samples, 'infergate_backend_queue_depth', labels);
    const before = (await scrape(batched.url)).samples;
    const job = (rows: number, seed: number) => ({ rows, x: randomFloats(seed, rows * 64) });
    const [a, b, c] = [job(8, 9500), job(30, 9501), job(2, 9502)];
    const send = (j: { rows: number; x: Float32Array }) =>
      infer(batched.url, 'mlp-close', xDoc(j.x, [j.rows, 64]));
    const check = (res: Awaited<ReturnType<typeof send>>, j: { rows: number; x: Float32Array }) =>
      assertClose(
        output(okInfer(res), 'y').data as number[],
        mlpReference('1', j.x, j.rows),
        TOL,
        `${j.rows} rows`,
      );

    const pa = send(a);
    await waitFor('the 8-row request to wait', async () => ((await depth()) === 1 ? true : undefined));
    // 8 + 30 > 32: the 8-row batch cannot grow any more, so it runs now (the delay is 20 s).
    const pb = send(b);
    check(await pa, a);
    assert.equal(await depth(), 1, 'the 30-row request still waits');
    // 30 + 2 = 32: full, runs now.
    const pc = send(c);
    const [rb, rc] = await Promise.all([pb, pc]);
    check(rb, b);
    check(rc, c);

    const after = (await scrape(batched.url)).samples;
    assert.deepEqual(batchesBetween(before, after, labels), { rows: 40, batches: 2 });
    const waitedUnder = (ss: Sample[]) =>
      sampleValue(ss, 'infergate_backend_queue_wait_seconds_bucket', { ...labels, le: '5' }) ?? 0;
    assert.equal(waitedUnder(after) - waitedUnder(before), 3, 'no request waited out the 20 s delay');
  });

  test('execution: inline batches and answers like the worker thread', async () => {
    const labels = { model: 'mlp-large', version: '1' };
    const before = (await scrape(inline.url)).samples;
    await mlpLargeRows(inline.url, 32, 9000);
    assert.deepEqual(batchesBetween(before, (await scrape(inline.url)).samples, labels), {
      rows: 32,
      batches: 2,
    });

    const x = randomFloats(9100, 2 * 3 * 48 * 192);
    const doc = xDoc(x, [2, 3, 48, 192]);
    const [a, b] = await Promise.all([
      infer(inline.url, 'text-direction', doc),
      infer(sample.url, 'text-direction', doc),
    ]);
    assertClose(
      output(okInfer(a), 'softmax_0.tmp_0').data as number[],
      output(okInfer(b), 'softmax_0.tmp_0').data as number[],
      TOL,
      'inline vs worker',
    );
  });

  test('execution: inline with small tensors: merged batches split back, each answer its own', async () => {
    // Three requests of 2 rows fill a batch of 6 (1.5 KiB of FP32, a view into a shared slab),
    // three times over, so that the slab's views sit next to each other and any overlap would show.
    const labels = { model: 'mlp', version: '1' };
    const before = (await scrape(inline.url)).samples;
    const requests = Array.from({ length: 9 }, (_, i) => ({ rows: 2, x: randomFloats(9200 + i, 2 * 64) }));
    const answers = await Promise.all(requests.map((r) => infer(inline.url, 'mlp', xDoc(r.x, [r.rows, 64]))));
    answers.forEach((res, i) => {
      const { rows, x } = requests[i]!;
      const y = output(okInfer(res), 'y');
      assert.deepEqual(y.shape, [rows, 10], `request ${i}`);
      assertClose(y.data as number[], mlpReference('1', x, rows), TOL, `request ${i}`);
    });
    assert.deepEqual(batchesBetween(before, (await scrape(inline.url)).samples, labels), {
      rows: 18,
      batches: 3,
    });
  });

  test('a request with batch 0 merged with another does not break it', async () => {
    const x = randomFloats(5000, 7 * 64);
    const [empty, full] = await Promise.all([
      infer(batched.url, 'mlp-merge', xDoc(new Float32Array(0), [0, 64])),
      infer(batched.url, 'mlp-merge', xDoc(x, [7, 64])),
    ]);
    assert.equal(full.status, 200, `the 7-row request: ${full.body.toString().slice(0, 200)}`);
    assertClose(output(okInfer(full), 'y').data as number[], mlpReference('1', x, 7), TOL);
    assert.deepEqual(output(okInfer(empty), 'y').shape, [0, 10]);
  });

  test('a batch-0 request alone answers an empty tensor', async () => {
    const doc = okInfer(await infer(sample.url, 'mlp', xDoc(new Float32Array(0), [0, 64])));
    assert.deepEqual(output(doc, 'y'), { name: 'y', datatype: 'FP32', shape: [0, 10], data: [] });
  });
});

describe('queue bound', () => {
  test('with batching off, the batch-size histogram records the rows each run really had', async () => {
    const labels = { model: 'mlp-large', version: '1' };
    const before = (await scrape(bounded.url)).samples;
    const x = randomFloats(7000, 64 * 512);
    okInfer(await infer(bounded.url, 'mlp-large', xDoc(x, [64, 512])));
    const { rows, batches } = batchesBetween(before, (await scrape(bounded.url)).samples, labels);
    assert.equal(batches, 1);
    assert.equal(rows, 64, 'rows of the one run');
  });

  test('max_queue_size 1, max_batch_size 0: some requests get 503 BE_ERR_QUEUE_FULL with Retry-After, the rest 200', async () => {
    const n = 32;
    const rows = 32;
    const x = randomFloats(6000, rows * 512);
    const want = mlpLargeReference(x.subarray(0, 4 * 512), 4);
    const header = {
      inputs: [
        { name: 'x', shape: [rows, 512], datatype: 'FP32', parameters: { binary_data_size: x.byteLength } },
      ],
      outputs: [{ name: 'y', parameters: { binary_data: true } }],
    };
    const labels = { model: 'mlp-large', version: '1' };
    const counted = (samples: Sample[], code: string) =>
      sampleValue(samples, 'infergate_backend_requests_total', { ...labels, code }) ?? 0;
    // Open the client's connections first, so the burst below reaches the server at once instead of
    // trickling in behind connection setup (onnxruntime-node runs sessions on the event loop).
    await Promise.all(Array.from({ length: n }, () => request(`${bounded.url}/v2/health/live`)));
    const before = (await scrape(bounded.url)).samples;
    const answers = await Promise.all(
      Array.from({ length: n }, () => postBinary(bounded.url, inferPath('mlp-large'), header, [leBytes(x)])),
    );
    let ok = 0;
    let full = 0;
    for (const res of answers) {
      if (res.status === 200) {
        ok++;
        const y = binaryOutputs(res).get('y')!;
        assert.equal(y.length, rows * 10 * 4);
        const got = new Float32Array(y.buffer.slice(y.byteOffset, y.byteOffset + 4 * 10 * 4));
        assertClose(got, want, TOL, 'first rows');
      } else {
        full++;
        const err = assertErrorBody(res, 503, 'BE_ERR_QUEUE_FULL');
        assert.match(err.error, /queue is full/);
        assert.equal(res.headers.get('retry-after'), '1');
      }
    }
    assert.ok(ok >= 2, `at least the running and the queued request succeed (ok ${ok})`);
    assert.ok(full >= 1, `at least one request is turned away (503 ${full})`);

    const { samples } = await scrape(bounded.url);
    assert.equal(counted(samples, '503') - counted(before, '503'), full);
    assert.equal(counted(samples, '200') - counted(before, '200'), ok);
    assert.equal(sampleValue(samples, 'infergate_backend_queue_depth', labels), 0);
    // max_batch_size 0: every batch is one request.
    assert.equal(batchesBetween(before, samples, labels).batches, ok);

    // Still serving.
    const one = randomFloats(6001, 512);
    assertClose(
      output(okInfer(await infer(bounded.url, 'mlp-large', xDoc(one, [1, 512]))), 'y').data as number[],
      mlpLargeReference(one, 1),
      TOL,
    );
  });

  test('max_queue_size 1 with a request waiting for company: exactly that one is served', async () => {
    // The first request waits in the queue (max_queue_delay_ms) for rows that never come; while it
    // waits the queue is full, so every other request is turned away.
    const n = 8;
    const jobs = Array.from({ length: n }, (_, i) => randomFloats(8000 + i, 64));
    const first = infer(bounded.url, 'mlp-hold', xDoc(jobs[0]!, [1, 64]));
    await waitFor('the first request to be queued', async () => {
      const { samples } = await scrape(bounded.url);
      return sampleValue(samples, 'infergate_backend_queue_depth', { model: 'mlp-hold', version: '1' }) === 1
        ? true
        : undefined;
    });
    const rest = await Promise.all(
      jobs.slice(1).map((x) => infer(bounded.url, 'mlp-hold', xDoc(x, [1, 64]))),
    );
    for (const res of rest) {
      assertErrorBody(res, 503, 'BE_ERR_QUEUE_FULL');
      assert.equal(res.headers.get('retry-after'), '1');
    }
    assertClose(output(okInfer(await first), 'y').data as number[], mlpReference('1', jobs[0]!, 1), TOL);
    // Once it ran, the queue takes requests again.
    const again = okInfer(await infer(bounded.url, 'mlp-hold', xDoc(jobs[1]!, [1, 64])));
    assertClose(output(again, 'y').data as number[], mlpReference('1', jobs[1]!, 1), TOL);
  });
});
