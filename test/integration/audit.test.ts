// The audit log through a real gateway: one line per request for served, refused (404, a
// backend's 400) and failed (502, 504) requests, with the variant, backend model and version that
// answered and the sha256 of input and output; rotation by size; drops counted when the queue is
// full; and `infergate audit find` printing what served a request from the rotated files.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import type { AuditLine } from '../../gateway/audit/log.js';
import { type AuditSink, RotatingFileSink } from '../../gateway/audit/sink.js';
import { request, sampleValue, scrape, tempDir } from '../helpers/backend.js';
import { gatewayTestbed, mlpBody, policyYaml, type RunningGateway } from '../helpers/gateway.js';

const bed = gatewayTestbed({ a: [{ name: 'mlp', version: '1' }] });
const real = bed.endpoint('a');
const body = mlpBody(3);
const sha = (b: string | Buffer) => createHash('sha256').update(b).digest('hex');

async function lines(file: string): Promise<AuditLine[]> {
  const text = await readFile(file, 'utf8');
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as AuditLine);
}

async function gateway(
  endpoints: string[],
  sink: AuditSink,
  more: { timeoutMs?: number; maxPending?: number } = {},
) {
  return bed.gateway({
    policy: policyYaml({
      variants: { stable: { endpoints, version: '1' } },
      timeoutMs: more.timeoutMs ?? 2000,
    }),
    extra: {
      audit: {
        sink,
        hash: true,
        flushMs: 10,
        ...(more.maxPending === undefined ? {} : { maxPending: more.maxPending }),
      },
    },
  });
}

const send = (g: RunningGateway, model = 'm', payload = body) =>
  request(`${g.url}/v2/models/${model}/infer`, {
    method: 'POST',
    body: payload,
    headers: {
      'content-type': 'application/json',
      'x-request-id': `req-${model}-${Math.random().toString(36).slice(2, 10)}`,
    },
  });

describe('audit lines', () => {
  test('served, refused and failed requests each get one line saying what answered', async () => {
    const file = path.join(await tempDir('infergate-audit-'), 'audit.log');
    const broken = await bed.fake({ status: 500 });
    const slow = await bed.fake({ delayMs: 2000 });
    const g = await gateway([real.url], new RotatingFileSink(file, 10_000_000));
    const g502 = await gateway([broken.url], new RotatingFileSink(`${file}.502`, 10_000_000));
    const g504 = await gateway([slow.url], new RotatingFileSink(`${file}.504`, 10_000_000), {
      timeoutMs: 100,
    });

    const served = await send(g);
    assert.equal(served.status, 200);
    const unknown = await send(g, 'nope');
    assert.equal(unknown.status, 404);
    const bad = await send(
      g,
      'm',
      '{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}',
    );
    assert.equal(bad.status, 400);
    assert.equal((await send(g502)).status, 502);
    assert.equal((await send(g504)).status, 504);
    await g.gateway.audit?.flush();
    await g502.gateway.audit?.flush();
    await g504.gateway.audit?.flush();

    const [ok, notFound, rejected] = await lines(file);
    assert.ok(ok && notFound && rejected);
    assert.equal(ok.requestId, served.headers.get('x-request-id'));
    assert.equal(ok.status, 200);
    assert.equal(ok.model, 'm');
    assert.equal(ok.variant, 'stable');
    assert.equal(ok.backend, 'be-stable');
    assert.equal(ok.backendModel, 'mlp');
    assert.equal(ok.backendVersion, '1');
    assert.equal(ok.endpoint, real.url);
    assert.equal(ok.attempts, 1);
    assert.equal(ok.outcome, 'response');
    assert.equal(ok.inputSha256, sha(body));
    assert.equal(ok.outputSha256, sha(served.body));
    assert.ok(ok.latencyMs > 0);
    assert.ok(Math.abs(Date.parse(ok.time) - Date.now()) < 60_000, `time ${ok.time} is now`);

    assert.equal(notFound.status, 404);
    assert.equal(notFound.model, 'nope');
    assert.equal(notFound.outcome, 'not_found');
    assert.equal(notFound.variant, undefined);
    assert.equal(notFound.attempts, 0);
    assert.equal(rejected.status, 400);
    assert.equal(rejected.backendVersion, '1');

    const [failed] = await lines(`${file}.502`);
    assert.equal(failed?.status, 502);
    assert.equal(failed?.endpoint, broken.url);
    assert.equal(failed?.attempts, 1);
    const [late] = await lines(`${file}.504`);
    assert.equal(late?.status, 504);
    assert.equal(late?.outcome, 'timeout');
    assert.equal(late?.backendModel, 'mlp');
    assert.equal(late?.outputSha256, undefined);
    const samples = (await scrape(g.adminUrl)).samples;
    assert.equal(sampleValue(samples, 'infergate_audit_lines_total', {}), 3);
    assert.equal(sampleValue(samples, 'infergate_audit_dropped_total', {}), 0);
  });

  test('a full queue drops records and counts them; the hot path never waits on the sink', async () => {
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const written: string[] = [];
    const sink: AuditSink = {
      async write(text) {
        await held;
        written.push(text);
      },
      async close() {},
    };
    const g = await gateway([real.url], sink, { maxPending: 2 });
    // The first record is taken by a write that hangs; two more wait; the rest are dropped.
    assert.equal((await send(g)).status, 200);
    const writing = g.gateway.audit?.flush();
    for (let i = 0; i < 5; i++) assert.equal((await send(g)).status, 200);
    const samples = (await scrape(g.adminUrl)).samples;
    assert.equal(sampleValue(samples, 'infergate_audit_dropped_total', {}), 3);
    release();
    await writing;
    await g.gateway.audit?.flush();
    assert.equal(
      written
        .join('')
        .split('\n')
        .filter((l) => l !== '').length,
      3,
    );
  });

  test('rotated by size; infergate audit find prints what served a request from every file', async () => {
    const file = path.join(await tempDir('infergate-audit-'), 'audit.log');
    const g = await gateway([real.url], new RotatingFileSink(file, 900));
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) {
      const res = await send(g);
      ids.push(String(res.headers.get('x-request-id')));
      await g.gateway.audit?.flush();
    }
    const files = [file, `${file}.1`, `${file}.2`, `${file}.3`, `${file}.4`];
    const byFile = await Promise.all(files.map((f) => lines(f).catch(() => [] as AuditLine[])));
    assert.ok(byFile[1] !== undefined && byFile[1].length > 0, 'the log was rotated');
    assert.ok((await readFile(file)).length <= 900);
    assert.equal(byFile.flat().length, 8, 'no line lost in rotation');
    const first = ids[0] as string;
    const holder = files[byFile.findIndex((ls) => ls.some((l) => l.requestId === first))] as string;

    const cli = bed.cli(['audit', 'find', first, ...files.filter((_, i) => (byFile[i] ?? []).length > 0)]);
    const exit = await cli.exited;
    assert.equal(exit.code, 0, cli.stderr());
    const escaped = (t: string) => t.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    assert.match(
      cli.stdout(),
      new RegExp(`${first} m -> 200 variant stable: mlp version 1 on ${escaped(real.url)}`),
    );
    assert.match(cli.stdout(), new RegExp(`\\[${escaped(holder)}\\]`));

    const missing = bed.cli(['audit', 'find', 'no-such-request', file]);
    assert.equal((await missing.exited).code, 1);
  });
});
