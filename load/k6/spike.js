// Spike: BASE req/s, a jump to PEAK (default 10 x BASE) in RISE, held for HOLD, back to BASE and
// held for RECOVER: does the gateway shed cleanly (429/503, not timeouts) and recover?
//   k6 run -e URL=http://gateway:8080 -e BASE=50 -e PEAK=800 load/k6/spike.js
// The thresholds cover the whole run; the per-stage latencies are in k6's output (--out).
import { payload } from './lib/body.js';
import { arrivalVus, number, readConfig, text, thresholds } from './lib/config.js';
import { infer, randomUser } from './lib/infer.js';

const cfg = readConfig(__ENV);
const body = payload(cfg, cfg.inputFile === undefined ? undefined : open(cfg.inputFile));
const base = number(__ENV, 'BASE', 50, 1);
const peak = number(__ENV, 'PEAK', base * 10, 1);
const rise = text(__ENV, 'RISE', '10s');

export const options = {
  scenarios: {
    spike: {
      executor: 'ramping-arrival-rate',
      startRate: base,
      timeUnit: '1s',
      stages: [
        { target: base, duration: text(__ENV, 'BEFORE', '1m') },
        { target: peak, duration: rise },
        { target: peak, duration: text(__ENV, 'HOLD', '1m') },
        { target: base, duration: rise },
        { target: base, duration: text(__ENV, 'RECOVER', '2m') },
      ],
      ...arrivalVus(peak),
    },
  },
  thresholds: thresholds(cfg),
};

export default function () {
  infer(cfg, body, randomUser(cfg.users));
}
