// Soak: a moderate constant rate for hours, to find what only time shows (a leak, a growing
// queue, connections that pile up). Watch the gateway's memory and open sockets beside it.
//   k6 run -e URL=http://gateway:8080 -e RATE=100 -e DURATION=4h load/k6/soak.js
import { payload } from './lib/body.js';
import { arrivalVus, number, readConfig, text, thresholds } from './lib/config.js';
import { infer, randomUser } from './lib/infer.js';

const cfg = readConfig(__ENV);
const body = payload(cfg, cfg.inputFile === undefined ? undefined : open(cfg.inputFile));
const rate = number(__ENV, 'RATE', 100, 1);

export const options = {
  scenarios: {
    soak: {
      executor: 'constant-arrival-rate',
      rate,
      timeUnit: '1s',
      duration: text(__ENV, 'DURATION', '2h'),
      ...arrivalVus(rate),
    },
  },
  thresholds: { ...thresholds(cfg), dropped_iterations: ['count==0'] },
};

export default function () {
  infer(cfg, body, randomUser(cfg.users));
}
