// serveModel never rejects: an unexpected error while answering (here, a response whose first
// writeHead throws: a fault no real socket produces on demand) is logged with the request id and
// answered 500 GW_ERR_INTERNAL, or the connection is closed when the answer had already started.
// Its promise is started with `void` in the server's request listener, so a rejection would take
// the process down.
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe, test } from 'node:test';
import { createLogger } from '../../common/logging.js';
import { StaticEndpointSource } from '../../gateway/endpoint-source.js';
import { GatewayMetrics } from '../../gateway/metrics.js';
import { type ModelServeDeps, serveModel } from '../../gateway/model-route.js';
import { compilePolicy } from '../../gateway/policy/compile.js';
import { SnapshotOwner } from '../../gateway/snapshot.js';
import { EndpointRegistry } from '../../gateway/upstream/endpoint.js';
import { FakeClock } from '../helpers/fake-clock.js';

const POLICY = `version: 1
defaults: { healthCheck: { intervalMs: 0 } }
backends:
  b: { endpoints: [http://127.0.0.1:9] }
models:
  m: { variants: { v: { backend: b, model: mlp } } }
`;

function deps(logs: string[]): ModelServeDeps {
  const clock = new FakeClock();
  const metrics = new GatewayMetrics({ processMetrics: false, sample: () => [] });
  const owner = new SnapshotOwner({
    clock,
    random: () => 0.5,
    metrics,
    registry: new EndpointRegistry(clock),
    endpointSource: new StaticEndpointSource(),
    onShed: () => {},
  });
  const compiled = compilePolicy(POLICY);
  assert.ok(compiled.ok);
  owner.apply(compiled.policy);
  const logger = createLogger({ name: 't', destination: { write: (line: string) => logs.push(line) } });
  return {
    clock,
    random: () => 0.5,
    logger,
    metrics,
    bodyLimit: 1024,
    current: () => owner.current,
    draining: () => false,
  };
}

/** A response whose first `writeHead` throws; what is written afterwards is recorded. */
function faultyResponse(headersSent: boolean) {
  const written: { status?: number; body?: string; destroyed: boolean } = { destroyed: false };
  let calls = 0;
  const res = {
    headersSent,
    writeHead(status: number) {
      calls += 1;
      if (calls === 1) throw new Error('injected writeHead failure');
      written.status = status;
      return res;
    },
    end(body?: string) {
      written.body = body;
    },
    destroy() {
      written.destroyed = true;
    },
  };
  return { res: res as unknown as ServerResponse, written };
}

const req = { headers: {}, socket: { destroyed: false } } as unknown as IncomingMessage;
const target = { kind: 'infer', model: 'no-such-model', version: undefined } as const;

describe('serveModel', () => {
  test('an error while answering is logged with the request id and answered 500 GW_ERR_INTERNAL', async () => {
    const logs: string[] = [];
    const { res, written } = faultyResponse(false);
    await serveModel(deps(logs), req, res, 'req-1', target, Buffer.from('{}'));
    assert.equal(written.status, 500);
    assert.equal(JSON.parse(written.body ?? '{}').code, 'GW_ERR_INTERNAL');
    assert.doesNotMatch(written.body ?? '', /injected/, 'the cause is not sent to the client');
    const line = logs.map((l) => JSON.parse(l)).find((l) => l.msg === 'unexpected error');
    assert.equal(line?.reqId, 'req-1');
    assert.match(line?.err?.message ?? '', /injected writeHead failure/);
  });

  test('when the answer had started, the connection is closed instead', async () => {
    const { res, written } = faultyResponse(true);
    await serveModel(deps([]), req, res, 'req-2', target, Buffer.from('{}'));
    assert.equal(written.destroyed, true);
    assert.equal(written.status, undefined);
  });
});
