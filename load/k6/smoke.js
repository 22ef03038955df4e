// Smoke test: one user, a few requests, every one must succeed. Run it first against a new
// deployment, before any load:   k6 run -e URL=http://gateway:8080 -e MODEL=mlp load/k6/smoke.js
import { payload } from './lib/body.js';
import { number, readConfig, thresholds } from './lib/config.js';
import { infer } from './lib/infer.js';

const cfg = readConfig(__ENV);
const body = payload(cfg, cfg.inputFile === undefined ? undefined : open(cfg.inputFile));

export const options = {
  scenarios: {
    smoke: {
      executor: 'per-vu-iterations',
      vus: 1,
      iterations: number(__ENV, 'ITERATIONS', 20, 1),
      maxDuration: '1m',
    },
  },
  thresholds: { ...thresholds(cfg), http_req_failed: ['rate==0'], checks: ['rate==1'] },
};

export default function () {
  infer(cfg, body);
}
