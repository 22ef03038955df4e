/**
 * bench-all's chart, hand-written SVG: on the left, latency (p50 solid, p99 dashed) against
 * offered load for each target; on the right, each figure that has an aim over the dated results
 * files, as a multiple of its aim (1 = the aim, below 1 = met, whichever way the aim points).
 */
import type { Curve } from './curve.js';
import { againstAim, type Figure } from './ratios.js';

export interface HistoryEntry {
  date: string;
  figures: readonly Figure[];
}

const COLORS: Record<string, string> = {
  direct: '#1f77b4',
  gateway: '#d62728',
  nginx: '#2ca02c',
  relay: '#9467bd',
};
const PALETTE = [
  '#1f77b4',
  '#ff7f0e',
  '#2ca02c',
  '#d62728',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#7f7f7f',
  '#bcbd22',
  '#17becf',
  '#393b79',
  '#637939',
  '#8c6d31',
  '#843c39',
];

const esc = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const n = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '0');

interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

function axes(b: Box, title: string, xLabel: string, yLabel: string): string {
  return (
    `<rect x="${b.x}" y="${b.y}" width="${b.w}" height="${b.h}" fill="none" stroke="#444"/>` +
    `<text x="${b.x + b.w / 2}" y="${b.y - 12}" text-anchor="middle" font-size="14" font-weight="bold">${esc(title)}</text>` +
    `<text x="${b.x + b.w / 2}" y="${b.y + b.h + 36}" text-anchor="middle" font-size="12">${esc(xLabel)}</text>` +
    `<text x="${b.x - 44}" y="${b.y + b.h / 2}" text-anchor="middle" font-size="12" transform="rotate(-90 ${b.x - 44} ${b.y + b.h / 2})">${esc(yLabel)}</text>`
  );
}

/** A round tick step (1, 2 or 5 times a power of ten) giving at most 5 steps up to `max`. */
export function tickStep(max: number): number {
  const raw = max / 5;
  const pow = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= raw) ?? 10 * pow;
}

function yTicks(b: Box, max: number, y: (v: number) => number): string {
  let out = '';
  const stepBy = tickStep(max);
  const digits = stepBy >= 1 ? 0 : Math.ceil(-Math.log10(stepBy));
  for (let v = 0; v <= max + 1e-9; v += stepBy) {
    out += `<line x1="${b.x}" x2="${b.x + b.w}" y1="${n(y(v))}" y2="${n(y(v))}" stroke="#ddd"/>`;
    out += `<text x="${b.x - 6}" y="${n(y(v) + 4)}" text-anchor="end" font-size="11">${v.toFixed(digits)}</text>`;
  }
  return out;
}

export function latencyPanel(curve: Curve, b: Box): string {
  const series = Object.entries(curve).filter(([, pts]) => pts !== undefined && pts.length > 0);
  const rates = series.flatMap(([, pts]) => pts!.map((p) => p.rate));
  const ms = series
    .flatMap(([, pts]) => pts!.flatMap((p) => [p.p50Ms, p.p99Ms]))
    .filter((v) => Number.isFinite(v) && v > 0);
  let out = axes(
    b,
    'Latency against offered load (simple, open loop)',
    'offered load, req/s (log scale)',
    'latency, ms (log scale)',
  );
  if (rates.length === 0) {
    return `${out}<text x="${b.x + b.w / 2}" y="${b.y + b.h / 2}" text-anchor="middle" font-size="12">not measured</text>`;
  }
  const lo = Math.log(Math.min(...rates));
  const hi = Math.log(Math.max(...rates));
  const x = (r: number) => b.x + (hi === lo ? b.w / 2 : ((Math.log(r) - lo) / (hi - lo)) * b.w);
  // Latency spans decades (a p50 of 1 ms, a p99 of hundreds near saturation): log scale.
  const yLo = Math.floor(Math.log10(Math.min(...ms, 1)));
  const yHi = Math.max(yLo + 1, Math.ceil(Math.log10(Math.max(...ms, 1))));
  const y = (v: number) => b.y + b.h - ((Math.log10(Math.max(v, 10 ** yLo)) - yLo) / (yHi - yLo)) * b.h;
  for (let k = yLo; k <= yHi; k++) {
    for (const m of k < yHi ? [1, 2, 5] : [1]) {
      const v = m * 10 ** k;
      out += `<line x1="${b.x}" x2="${b.x + b.w}" y1="${n(y(v))}" y2="${n(y(v))}" stroke="${m === 1 ? '#ccc' : '#eee'}"/>`;
      out += `<text x="${b.x - 6}" y="${n(y(v) + 4)}" text-anchor="end" font-size="11">${v >= 1 ? v : v.toFixed(-k)}</text>`;
    }
  }
  for (const r of [...new Set(rates)]) {
    out += `<text x="${n(x(r))}" y="${b.y + b.h + 16}" text-anchor="middle" font-size="11">${r}</text>`;
  }
  series.forEach(([name, pts], i) => {
    const color = COLORS[name] ?? PALETTE[i % PALETTE.length]!;
    for (const [key, dash] of [
      ['p50Ms', ''],
      ['p99Ms', ' stroke-dasharray="6 4"'],
    ] as const) {
      const d = pts!.map((p) => `${n(x(p.rate))},${n(y(p[key]))}`).join(' ');
      out += `<polyline points="${d}" fill="none" stroke="${color}" stroke-width="2"${dash}/>`;
    }
    out += `<text x="${b.x + 10}" y="${b.y + 18 + 16 * i}" font-size="12" fill="${color}">${esc(name)}</text>`;
  });
  out += `<text x="${b.x + b.w - 8}" y="${b.y + 18}" text-anchor="end" font-size="11">solid p50, dashed p99</text>`;
  return out;
}

export function historyPanel(history: readonly HistoryEntry[], b: Box): string {
  let out = axes(
    b,
    'Figures against their aims, run by run',
    'results file (date)',
    'value ÷ aim (below 1: met)',
  );
  const keys = [
    ...new Set(history.flatMap((h) => h.figures.filter((f) => f.aim !== undefined).map((f) => f.key))),
  ];
  const values = history
    .flatMap((h) => h.figures.map(againstAim))
    .filter((v): v is number => v !== undefined);
  if (history.length === 0 || values.length === 0) {
    return `${out}<text x="${b.x + b.w / 2}" y="${b.y + b.h / 2}" text-anchor="middle" font-size="12">no figures yet</text>`;
  }
  const max = Math.min(4, Math.max(2, ...values)) * 1.05;
  const x = (i: number) =>
    b.x + (history.length === 1 ? b.w / 2 : 20 + (i / (history.length - 1)) * (b.w - 40));
  const y = (v: number) => b.y + b.h - (Math.max(0, Math.min(v, max)) / max) * b.h;
  out += yTicks(b, max, y);
  out += `<line x1="${b.x}" x2="${b.x + b.w}" y1="${n(y(1))}" y2="${n(y(1))}" stroke="#000" stroke-dasharray="2 3"/>`;
  out += `<text x="${b.x + b.w - 4}" y="${n(y(1) - 4)}" text-anchor="end" font-size="11">aim</text>`;
  history.forEach((h, i) => {
    out += `<text x="${n(x(i))}" y="${b.y + b.h + 16}" text-anchor="middle" font-size="10">${esc(h.date.slice(5, 10))}</text>`;
  });
  keys.forEach((key, k) => {
    const color = PALETTE[k % PALETTE.length]!;
    const pts = history
      .map((h, i) => {
        const f = h.figures.find((g) => g.key === key);
        const v = f === undefined ? undefined : againstAim(f);
        return v === undefined ? undefined : { x: x(i), y: y(v) };
      })
      .filter((p): p is { x: number; y: number } => p !== undefined);
    if (pts.length > 1) {
      out += `<polyline points="${pts.map((p) => `${n(p.x)},${n(p.y)}`).join(' ')}" fill="none" stroke="${color}" stroke-width="1.5"/>`;
    }
    for (const p of pts) out += `<circle cx="${n(p.x)}" cy="${n(p.y)}" r="3" fill="${color}"/>`;
    out += `<text x="${b.x + b.w + 12}" y="${b.y + 10 + 14 * k}" font-size="11" fill="${color}">${esc(key)}</text>`;
  });
  return out;
}

/** The whole SVG document. */
export function svgChart(curve: Curve, history: readonly HistoryEntry[], caption: string): string {
  const body =
    latencyPanel(curve, { x: 70, y: 50, w: 460, h: 320 }) +
    historyPanel(history, { x: 640, y: 50, w: 420, h: 320 });
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="1300" height="440" viewBox="0 0 1300 440" font-family="sans-serif">\n` +
    `<rect width="1300" height="440" fill="#fff"/>\n${body}\n` +
    `<text x="70" y="430" font-size="11" fill="#555">${esc(caption)}</text>\n</svg>\n`
  );
}
