/**
 * Reads a V8 `.cpuprofile` written by `node --cpu-prof` and says where a server's CPU went during a
 * measured load window: self time by package and by function, and inclusive time of the project's
 * own functions, each per request. Used by `bench:gateway --profile` and `bench:backend --profile`.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { table } from './lib.js';

interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    children?: number[];
  }[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileSummary {
  file: string;
  /** Main-thread time not idle, per request. */
  mainThreadBusyUsPerRequest: number;
  selfByPackage: { name: string; usPerRequest: number; percentBusy: number }[];
  selfByFunction: { name: string; usPerRequest: number; percentBusy: number }[];
  inclusiveProjectCode: { name: string; usPerRequest: number; percentBusy: number }[];
}

/** The monotonic clock in microseconds, as V8 stamps profile samples. */
export function profileClockUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/** The one `.cpuprofile` a process wrote into `dir` when it exited. */
export async function profileIn(dir: string): Promise<string> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile'));
  if (files.length === 0) throw new Error(`no .cpuprofile in ${dir}`);
  return join(dir, files[0]!);
}

/**
 * Summarises the samples taken between `windowStart` and `windowEnd` (profileClockUs), divided
 * over `requests`. `root` is the repository's root, cut from file names.
 */
export async function summariseProfile(
  file: string,
  window: { start: number; end: number },
  requests: number,
  root: string,
  limits = { packages: 30, functions: 60, inclusive: 40 },
): Promise<ProfileSummary> {
  const prof = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  // A sample stands for the time until the next one (as DevTools counts it).
  let at = prof.startTime;
  let inWindow = 0;
  for (let i = 0; i < prof.samples.length; i++) {
    at += prof.timeDeltas[i] ?? 0;
    if (at < window.start || at > window.end) continue;
    inWindow++;
    const id = prof.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, prof.timeDeltas[i + 1] ?? 0));
  }
  if (inWindow < 100) {
    throw new Error(
      `only ${inWindow} of ${prof.samples.length} profile samples fall in the load window: clocks differ?`,
    );
  }
  const short = (u: string) =>
    u
      .replace(/^file:\/\//, '')
      .replace(`${root}/`, '')
      .replace(/^.*node_modules\//, '');
  const pkg = (u: string): string => {
    if (u === '') return '(native / VM)';
    if (u.startsWith('node:')) return 'node core';
    if (u.startsWith('wasm:')) return 'llhttp (wasm, undici)';
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(u);
    if (m) return m[1]!;
    const rel = short(u);
    return rel.includes('/') ? `${rel.split('/')[0]}/` : rel;
  };
  const fnSelf = new Map<string, number>();
  const pkgSelf = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const n = byId.get(id)!;
    const { functionName, url: u, lineNumber } = n.callFrame;
    total += us;
    if (functionName === '(idle)') {
      idle += us;
      continue;
    }
    const key = `${functionName || '(anonymous)'}  ${u === '' ? '' : `${short(u)}:${lineNumber + 1}`}`;
    fnSelf.set(key, (fnSelf.get(key) ?? 0) + us);
    const p = functionName.startsWith('(') ? functionName : pkg(u);
    pkgSelf.set(p, (pkgSelf.get(p) ?? 0) + us);
  }
  // Inclusive time of the project's own functions (by name), from the call tree.
  const inclusive = new Map<string, number>();
  const walk = (id: number, onStack: Set<string>): number => {
    const n = byId.get(id)!;
    let sum = selfUs.get(id) ?? 0;
    const key = `${n.callFrame.functionName || '(anonymous)'}  ${short(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;
    const add = !onStack.has(key);
    if (add) onStack.add(key);
    for (const c of n.children ?? []) sum += walk(c, onStack);
    if (add) {
      onStack.delete(key);
      if (
        n.callFrame.url !== '' &&
        !n.callFrame.url.startsWith('wasm:') &&
        !n.callFrame.url.includes('node_modules') &&
        !n.callFrame.url.startsWith('node:')
      ) {
        inclusive.set(key, (inclusive.get(key) ?? 0) + sum);
      }
    }
    return sum;
  };
  walk(prof.nodes[0]!.id, new Set());

  const busy = total - idle;
  const rows = (m: Map<string, number>, k: number) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, k)
      .map(([name, us]) => ({ name, usPerRequest: us / requests, percentBusy: (100 * us) / busy }));
  return {
    file,
    mainThreadBusyUsPerRequest: busy / requests,
    selfByPackage: rows(pkgSelf, limits.packages),
    selfByFunction: rows(fnSelf, limits.functions),
    inclusiveProjectCode: rows(inclusive, limits.inclusive),
  };
}

/** The summary as tables: the top 16 packages, 30 functions and 20 project functions. */
export function profileTables(s: ProfileSummary): string {
  const t = (title: string, rs: ProfileSummary['selfByPackage'], k: number) =>
    table(
      [title, 'us/req', '% busy'],
      rs.slice(0, k).map((r) => [r.name, r.usPerRequest, r.percentBusy]),
    );
  return [
    t('self time by package', s.selfByPackage, 16),
    t('self time by function', s.selfByFunction, 30),
    t('inclusive, project code', s.inclusiveProjectCode, 20),
  ].join('\n\n');
}
