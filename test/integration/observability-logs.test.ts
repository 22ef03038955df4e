// Logs a person can read and that hold no secret: the gateway's warning lines carry the request
// id and the trace id of the answer; credentials and tokens are redacted wherever they sit in a
// record; readable lines (not JSON) when asked or on a terminal; the real command with tracing
// and the audit log on stdout.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { formatRecord } from '../../common/log-format.js';
import { createLogger } from '../../common/logging.js';
import { request, tempDir } from '../helpers/backend.js';
import { gatewayTestbed, mlpBody, policyYaml } from '../helpers/gateway.js';
import { type OtlpReceiver, startOtlpReceiver } from '../helpers/otlp.js';

const bed = gatewayTestbed({ backend: [{ name: 'mlp', version: '1' }] });
const backend = bed.endpoint('backend');
let otlp: OtlpReceiver;
before(async () => {
  otlp = await startOtlpReceiver();
});
after(() => otlp.close());

function capture() {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString('utf8'));
      done();
    },
  });
  return {
    logger: createLogger({ name: 'infergate-gateway', destination }),
    text: () => chunks.join(''),
    records: () =>
      chunks
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

describe('logs', () => {
  test("a backend error's warning names the request id and the trace id the client was given", async () => {
    const log = capture();
    const broken = await bed.fake({ status: 500 });
    const g = await bed.gateway({
      policy: policyYaml({ variants: { only: { endpoints: [broken.url] } } }),
      extra: { logger: log.logger, tracing: otlp.config('infergate-gateway') },
    });
    const res = await request(`${g.url}/v2/models/m/infer`, {
      method: 'POST',
      body: mlpBody(1),
      headers: {
        'content-type': 'application/json',
        'x-request-id': 'req-log-1',
        authorization: 'Bearer SECRET-1',
      },
    });
    assert.equal(res.status, 502);
    const line = log.records().find((r) => r.msg === 'backend error');
    assert.ok(line, log.text());
    assert.equal(line.reqId, 'req-log-1');
    assert.equal(line.traceId, res.headers.get('x-trace-id'));
    assert.ok(!log.text().includes('SECRET'));
  });

  test('credentials and tokens are redacted wherever they sit', () => {
    const log = capture();
    log.logger.warn(
      {
        headers: { authorization: 'Bearer SECRET-a', 'x-api-key': 'SECRET-b', cookie: 'SECRET-c' },
        req: { headers: { authorization: 'SECRET-d', 'x-api-key': 'SECRET-e' } },
        token: 'SECRET-f',
        auth: { token: 'SECRET-g', apiKey: 'SECRET-h', password: 'SECRET-i' },
        authorization: 'SECRET-j',
        keyId: 'team-a',
      },
      'a record full of secrets',
    );
    assert.ok(!log.text().includes('SECRET'), log.text());
    assert.equal(log.records()[0]?.keyId, 'team-a', 'the key id is kept');
  });

  test('readable lines: time, level, name, message, then key=value pairs and the stack below', () => {
    const err = new Error('boom');
    const json = JSON.stringify({
      level: 40,
      time: Date.UTC(2026, 0, 2, 3, 4, 5, 678),
      pid: 1,
      hostname: 'h',
      name: 'infergate-gateway',
      msg: 'backend error',
      reqId: '42',
      traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
      note: 'two words',
      err: { message: err.message, stack: err.stack },
    });
    const line = formatRecord(json, false);
    assert.match(
      line,
      /^03:04:05\.678 WARN {2}infergate-gateway: backend error reqId=42 traceId=4bf92f3577b34da6a3ce929d0e0e4736 note="two words" err=boom\n {4}at /,
    );
  });
});

describe('the gateway command', () => {
  test('INFERGATE_LOG_FORMAT=pretty logs readable lines; --audit-log - writes audit lines to stdout; traces go to OTEL_EXPORTER_OTLP_ENDPOINT', async () => {
    const file = path.join(await tempDir(), 'policy.yaml');
    await writeFile(file, policyYaml({ variants: { only: { endpoints: [backend.url], version: '1' } } }));
    const p = bed.cli(['gateway', '--policy', file, '--port', '0', '--admin-port', '0', '--audit-log', '-'], {
      INFERGATE_LOG_FORMAT: 'pretty',
      OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
      OTEL_BSP_SCHEDULE_DELAY: '20',
    });
    const exit = p.exited.then((e) => assert.fail(`exited early: ${JSON.stringify(e)} ${p.stderr()}`));
    const address = await Promise.race([
      exit,
      new Promise<string>((resolve, reject) => {
        const deadline = setTimeout(() => reject(new Error(`no listening line: ${p.stderr()}`)), 20_000);
        const check = () => {
          const m = /gateway listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(p.stderr());
          if (m === null) return;
          clearTimeout(deadline);
          p.child.stderr?.off('data', check);
          resolve(m[1] as string);
        };
        p.child.stderr?.on('data', check);
        check();
      }),
    ]);
    // Stopped by the testbed later: that exit is no failure.
    exit.catch(() => {});
    assert.match(p.stderr(), /^\d\d:\d\d:\d\d\.\d{3} INFO {2}infergate-gateway: /m);
    const res = await request(`${address}/v2/models/m/infer`, {
      method: 'POST',
      body: mlpBody(2),
      headers: { 'content-type': 'application/json', 'x-request-id': 'req-cli-1' },
    });
    assert.equal(res.status, 200);
    const traceId = String(res.headers.get('x-trace-id'));
    await otlp.waitFor('the CLI gateway span', (all) =>
      all.some((s) => s.traceId === traceId && s.service === 'infergate-gateway'),
    );
    const audit = await p.waitForLog('the audit line', (r) => r.requestId === 'req-cli-1');
    assert.equal(audit.backendVersion, '1');
    assert.equal(audit.traceId, traceId);
  });
});
