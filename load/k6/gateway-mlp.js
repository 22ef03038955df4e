// k6 load test of the gateway on the `mlp` model of the local stack (npm start), for users who run
// k6 against their own deployment: an open-model (constant arrival rate) test with sticky users,
// checks on every answer, and thresholds that fail the run when errors or latency exceed them.
//
//   k6 run load/k6/gateway-mlp.js
//   k6 run -e BASE_URL=http://gateway:8080 -e RATE=500 -e DURATION=5m -e P99_MS=100 load/k6/gateway-mlp.js
//
// The split between variants shows as the `variant_requests` counter, tagged by variant, in k6's
// summary; compare it with the policy's weights while you edit them.
import { check } from 'k6';
import http from 'k6/http';
import { Counter } from 'k6/metrics';

const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8080';
const RATE = Number(__ENV.RATE || 200);
const DURATION = __ENV.DURATION || '1m';
const P99_MS = Number(__ENV.P99_MS || 250);
const USERS = Number(__ENV.USERS || 1000);

export const options = {
  scenarios: {
    infer: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: Math.max(10, Math.ceil(RATE / 20)),
      maxVUs: Math.max(50, RATE),
    },
  },
  thresholds: {
    http_req_failed: ['rate<0.001'],
    http_req_duration: [`p(95)<${Number(__ENV.P95_MS || P99_MS / 2)}`, `p(99)<${P99_MS}`],
    checks: ['rate>0.999'],
  },
};

const variantRequests = new Counter('variant_requests');
const x = Array.from({ length: 64 }, (_, i) => i / 64);
const body = JSON.stringify({ inputs: [{ name: 'x', shape: [1, 64], datatype: 'FP32', data: x }] });

export default function () {
  const user = `user-${Math.floor(Math.random() * USERS)}`;
  const res = http.post(`${BASE_URL}/v2/models/mlp/infer`, body, {
    headers: { 'content-type': 'application/json', 'x-user-id': user },
    tags: { name: 'infer mlp' },
  });
  const variant = res.headers['X-Infergate-Variant'] || res.headers['x-infergate-variant'] || 'none';
  variantRequests.add(1, { variant });
  check(res, {
    'status is 200': (r) => r.status === 200,
    'answer has output y': (r) => {
      try {
        return r.json('outputs.0.name') === 'y';
      } catch (_) {
        return false;
      }
    },
    'a variant is named': () => variant !== 'none',
  });
}
