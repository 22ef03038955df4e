// Runs the real `infergate` command (bin/infergate.js) in a child process and follows its JSON
// log lines, so tests await events (a log line, the exit) instead of sleeping.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { REPO_ROOT } from './backend.js';

export interface LogRecord {
  level: number;
  msg: string;
  [key: string]: unknown;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface CliProcess {
  child: ChildProcess;
  /** Every stdout line parsed as JSON (non-JSON lines are kept as `{msg: line}`). */
  logs: LogRecord[];
  stderr(): string;
  stdout(): string;
  exited: Promise<Exit>;
  /** Resolves with the first log record (past or future) that matches; rejects on exit or timeout. */
  waitForLog(what: string, match: (r: LogRecord) => boolean, timeoutMs?: number): Promise<LogRecord>;
  /** Kills the process if it still runs and waits for it to exit. */
  stop(): Promise<Exit>;
}

/** Runs `infergate ARGS`; `env` entries override the environment (undefined removes one). */
export function runCli(args: string[], env: Record<string, string | undefined> = {}): CliProcess {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, INFERGATE_LOG_LEVEL: 'info' };
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete childEnv[k];
    else childEnv[k] = v;
  }
  const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin', 'infergate.js'), ...args], {
    cwd: REPO_ROOT,
    env: childEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: LogRecord[] = [];
  const stdoutLines: string[] = [];
  let stderr = '';
  const waiters: { match: (r: LogRecord) => boolean; resolve: (r: LogRecord) => void }[] = [];
  let exit: Exit | undefined;

  createInterface({ input: child.stdout! }).on('line', (line) => {
    stdoutLines.push(line);
    let record: LogRecord;
    try {
      record = JSON.parse(line) as LogRecord;
    } catch {
      record = { level: 0, msg: line };
    }
    logs.push(record);
    for (const w of [...waiters]) {
      if (w.match(record)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(record);
      }
    }
  });
  child.stderr!.on('data', (c: Buffer) => {
    stderr += c.toString('utf8');
  });
  const exited = new Promise<Exit>((resolve) => {
    child.on('exit', (code, signal) => {
      exit = { code, signal };
      resolve(exit);
    });
  });

  return {
    child,
    logs,
    stderr: () => stderr,
    stdout: () => stdoutLines.join('\n'),
    exited,
    waitForLog(what, match, timeoutMs = 30_000) {
      const past = logs.find(match);
      if (past !== undefined) return Promise.resolve(past);
      return new Promise<LogRecord>((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(
            new Error(
              `timed out after ${timeoutMs} ms waiting for log: ${what}\nstdout:\n${stdoutLines.join('\n')}\nstderr:\n${stderr}`,
            ),
          );
        }, timeoutMs);
        const waiter = {
          match,
          resolve: (r: LogRecord) => {
            clearTimeout(timer);
            resolve(r);
          },
        };
        waiters.push(waiter);
        void exited.then((e) => {
          if (!waiters.includes(waiter)) return;
          clearTimeout(timer);
          reject(
            new Error(
              `process exited (${e.code ?? e.signal}) before log: ${what}\nstdout:\n${stdoutLines.join('\n')}\nstderr:\n${stderr}`,
            ),
          );
        });
      });
    },
    async stop() {
      if (exit === undefined) child.kill('SIGKILL');
      return exited;
    },
  };
}

/** Starts `infergate backend` on port 0 and returns its address from the "listening" log line. */
export async function startCliBackend(
  modelRepository: string,
  extra: string[] = [],
): Promise<{ proc: CliProcess; url: string }> {
  const proc = runCli(['backend', '--model-repository', modelRepository, '--port', '0', ...extra]);
  const line = await proc.waitForLog('backend listening', (r) =>
    r.msg.startsWith('backend listening on http://'),
  );
  const url = line.address;
  assert.equal(typeof url, 'string', 'the listening line carries the address');
  assert.equal(line.msg, `backend listening on ${url}`);
  return { proc, url: url as string };
}
