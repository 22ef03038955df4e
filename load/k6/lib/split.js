// The split check: the share of answers each variant gave, against the policy's weights. With n
// answers and a variant of weight p, the observed share p̂ has a standard error of
// sqrt(p(1-p)/n); a drift of more than z of those (z = 4 by default: a false alarm about once in
// 16,000 runs per variant) says the split is not the one in the policy. Pure functions, no k6.

/** "stable:90,canary:10" as { stable: 0.9, canary: 0.1 } (normalised to sum to 1). */
export function parseWeights(text) {
  if (text === undefined || text === '')
    throw new Error('WEIGHTS: give the policy split, e.g. stable:90,canary:10');
  const weights = {};
  let total = 0;
  for (const part of text.split(',')) {
    const m = /^\s*([A-Za-z0-9][A-Za-z0-9_.-]*)\s*:\s*(\d+(?:\.\d+)?)\s*$/.exec(part);
    if (m === null) throw new Error(`WEIGHTS: '${part}' is not variant:weight`);
    if (m[1] in weights) throw new Error(`WEIGHTS: variant '${m[1]}' named twice`);
    weights[m[1]] = Number(m[2]);
    total += Number(m[2]);
  }
  if (!(total > 0)) throw new Error('WEIGHTS: the weights sum to 0');
  for (const k of Object.keys(weights)) weights[k] /= total;
  return weights;
}

/** The band [low, high] the share of a variant of weight p stays in over n answers, at z. */
export function shareBand(p, n, z = 4) {
  const half = n > 0 ? z * Math.sqrt((p * (1 - p)) / n) : 1;
  return { low: Math.max(0, p - half), high: Math.min(1, p + half) };
}

/**
 * The verdict on `counts` (answers per variant, as observed) against `weights` (from
 * parseWeights): ok when every weighted variant's share is within its band and no answer came
 * from a variant outside the policy. rows: one per variant, for the report.
 */
export function splitVerdict(counts, weights, z = 4) {
  const n = Object.values(counts).reduce((a, b) => a + b, 0);
  const names = [...new Set([...Object.keys(weights), ...Object.keys(counts)])];
  const rows = names.map((variant) => {
    const p = weights[variant] === undefined ? 0 : weights[variant];
    const observed = n === 0 ? 0 : (counts[variant] || 0) / n;
    const band = shareBand(p, n, z);
    const ok = n > 0 && weights[variant] !== undefined && observed >= band.low && observed <= band.high;
    return {
      variant,
      count: counts[variant] || 0,
      expected: p,
      observed,
      low: band.low,
      high: band.high,
      ok,
    };
  });
  return { n, ok: n > 0 && rows.every((r) => r.ok), rows };
}

/** The verdict as text lines for k6's summary. */
export function splitReport(v) {
  const pct = (x) => `${(100 * x).toFixed(2)}%`;
  const lines = [`split check over ${v.n} answers: ${v.ok ? 'within the sampling error' : 'DRIFTED'}`];
  for (const r of v.rows) {
    lines.push(
      `  ${r.ok ? 'ok  ' : 'FAIL'} ${r.variant}: ${r.count} answers, ${pct(r.observed)} observed, ` +
        `${pct(r.expected)} expected (band ${pct(r.low)}-${pct(r.high)})`,
    );
  }
  return `${lines.join('\n')}\n`;
}
