/**
 * What bench:gateway starts, and how it all stops: every child server and the baseline worktree
 * is registered here, and stopped newest first, each process by its own pid (SIGKILL if it
 * lingers), at the end, on SIGINT/SIGTERM, and as a last resort on exit.
 */
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { delimiter, join } from 'node:path';
import type { ChildServer } from '../lib.js';

interface Cleanup {
  name: string;
  pids: () => number[];
  stop: () => Promise<void>;
  /** Synchronous, for the exit handler, where nothing asynchronous runs any more. */
  lastResort?: () => void;
}

const cleanups: Cleanup[] = [];

export function onCleanup(c: Cleanup): void {
  cleanups.push(c);
}

/** Registers a started child server (and, for nginx, its workers). */
export function track(name: string, server: ChildServer, extraPids: () => number[] = () => []): ChildServer {
  cleanups.push({ name, pids: () => [server.pid, ...extraPids()], stop: () => server.stop() });
  return server;
}

/** Forgets a server without stopping it (the caller stops it itself). */
export function untrack(name: string): void {
  const i = cleanups.findIndex((c) => c.name === name);
  if (i >= 0) cleanups.splice(i, 1);
}

/** Stops what was registered, newest first; with `which`, only the entries it names. */
export async function stopAll(which: (name: string) => boolean = () => true): Promise<void> {
  for (let i = cleanups.length - 1; i >= 0; i--) {
    const c = cleanups[i]!;
    if (!which(c.name)) continue;
    cleanups.splice(i, 1);
    const pids = c.pids();
    let timer: NodeJS.Timeout | undefined;
    const stopped = await Promise.race([
      c.stop().then(
        () => true,
        () => false,
      ),
      new Promise<false>((ok) => {
        timer = setTimeout(() => ok(false), 10_000);
      }),
    ]);
    clearTimeout(timer);
    if (!stopped) for (const pid of pids) killQuietly(pid, 'SIGKILL');
  }
}

const onStop = new Set<() => Promise<void>>();
let installed = false;

/**
 * Stops everything on SIGINT/SIGTERM (and then runs `also`), and kills what is left on exit.
 * The handlers are installed once per process; the returned function forgets `also` (a run that
 * ended cleans up after itself).
 */
export function stopOnSignals(also: () => Promise<void>): () => void {
  onStop.add(also);
  if (!installed) {
    installed = true;
    const onSignal = (signal: NodeJS.Signals) => {
      process.stderr.write(`\n${signal}: stopping the servers\n`);
      void stopAll()
        .then(async () => {
          for (const f of onStop) await f();
        })
        .finally(() => process.exit(130));
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    // Last resort (an exception that skips the callers' finally): nothing outlives the benchmark.
    process.once('exit', () => {
      for (const c of cleanups) {
        for (const pid of c.pids()) killQuietly(pid, 'SIGKILL');
        c.lastResort?.();
      }
    });
  }
  return () => onStop.delete(also);
}

export function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', ok);
  });
  const address = server.address();
  await new Promise<void>((ok) => server.close(() => ok()));
  if (address === null || typeof address === 'string') throw new Error('no free port');
  return address.port;
}

/** Children of `pid`, from /proc (nginx's workers). */
export async function childPids(pid: number): Promise<number[]> {
  const out: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** The path of `cmd` on PATH (or in the sbin folders, where apt puts nginx), if any. */
export function whichSync(cmd: string): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin', '/sbin']) {
    if (dir !== '' && existsSync(join(dir, cmd))) return join(dir, cmd);
  }
  return undefined;
}
