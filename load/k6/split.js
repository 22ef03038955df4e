// Split check: a constant arrival rate of distinct users; every answer's x-infergate-variant is
// counted, and the run fails when a variant's share drifts from the policy's weight beyond its
// sampling error (|p̂ - p| > Z·sqrt(p(1-p)/n), Z = 4), or a variant outside WEIGHTS answers.
//   k6 run -e URL=http://gateway:8080 -e MODEL=mlp -e WEIGHTS=stable:90,canary:10 load/k6/split.js
// The thresholds use the planned number of requests (RATE x DURATION); the summary adds the
// verdict on the answers actually counted. Users are fresh per request (USERS large), so that
// sticky routing does not cluster the sample.
import { textSummary } from 'https://jslib.k6.io/k6-summary/0.0.2/index.js';
import { Counter, Rate } from 'k6/metrics';
import { payload } from './lib/body.js';
import { arrivalVus, number, readConfig, seconds, text, thresholds } from './lib/config.js';
import { infer, variantOf } from './lib/infer.js';
import { parseWeights, shareBand, splitReport, splitVerdict } from './lib/split.js';

const cfg = readConfig({ USERS: '1000000000', ...__ENV });
const body = payload(cfg, cfg.inputFile === undefined ? undefined : open(cfg.inputFile));
const weights = parseWeights(__ENV.WEIGHTS);
const z = number(__ENV, 'Z', 4, 1, 10);
const rate = number(__ENV, 'RATE', 100, 1);
const duration = text(__ENV, 'DURATION', '2m');
const planned = rate * seconds('DURATION', duration);

const share = new Rate('variant_share');
const unexpected = new Counter('unexpected_variant');

const shareThresholds = {};
for (const [variant, p] of Object.entries(weights)) {
  const band = shareBand(p, planned, z);
  // Rounded outwards to 6 places, so the thresholds read well in k6's summary.
  const low = Math.floor(band.low * 1e6) / 1e6;
  const high = Math.ceil(band.high * 1e6) / 1e6;
  shareThresholds[`variant_share{variant:${variant}}`] = [`rate>=${low}`, `rate<=${high}`];
}

export const options = {
  scenarios: {
    split: { executor: 'constant-arrival-rate', rate, timeUnit: '1s', duration, ...arrivalVus(rate) },
  },
  thresholds: { ...thresholds(cfg), ...shareThresholds, unexpected_variant: ['count==0'] },
};

export default function () {
  const res = infer(cfg, body, `user-${Math.floor(Math.random() * cfg.users)}`);
  if (res.status !== 200) return;
  const variant = variantOf(res);
  for (const v of Object.keys(weights)) share.add(variant === v, { variant: v });
  if (!(variant in weights)) unexpected.add(1, { variant });
}

/** Answers per variant from the summary's data (the weighted ones, and the count of the others). */
export function countsFrom(data) {
  const counts = {};
  for (const v of Object.keys(weights)) {
    const m = data.metrics[`variant_share{variant:${v}}`];
    counts[v] = m === undefined ? 0 : m.values.passes;
  }
  const other = data.metrics.unexpected_variant;
  if (other !== undefined && other.values.count > 0) counts['(not in WEIGHTS)'] = other.values.count;
  return counts;
}

export function handleSummary(data) {
  const verdict = splitVerdict(countsFrom(data), weights, z);
  return { stdout: `${textSummary(data, { indent: ' ', enableColors: true })}\n\n${splitReport(verdict)}` };
}
