/**
 * Readable log lines for a terminal (`npm start`): pino's JSON record turned into one line,
 * `12:03:04.567 WARN  infergate-gateway: backend error reqId=42 traceId=4bf9... status=500`, with
 * the error's stack indented below it. The JSON stays the format everywhere else (files, pipes,
 * collectors); redaction has happened before a record gets here.
 */
import type { DestinationStream } from 'pino';

const LEVELS: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO ',
  40: 'WARN ',
  50: 'ERROR',
  60: 'FATAL',
};
const COLOURS: Record<number, string> = { 40: '\x1b[33m', 50: '\x1b[31m', 60: '\x1b[41m' };
const RESET = '\x1b[0m';
const SKIP = new Set(['level', 'time', 'pid', 'hostname', 'name', 'msg', 'v']);

function value(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]{1,200}$/.test(v) ? v : JSON.stringify(v);
  return JSON.stringify(v);
}

/** One record as a readable line (or the text as it was, when it is not a JSON record). */
export function formatRecord(text: string, colour: boolean): string {
  let r: Record<string, unknown>;
  try {
    r = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return text.endsWith('\n') ? text : `${text}\n`;
  }
  const level = typeof r.level === 'number' ? r.level : 30;
  const time = typeof r.time === 'number' ? new Date(r.time).toISOString().slice(11, 23) : '';
  const name = typeof r.name === 'string' ? `${r.name}: ` : '';
  let label = LEVELS[level] ?? String(level);
  if (colour && COLOURS[level] !== undefined) label = `${COLOURS[level]}${label}${RESET}`;
  let line = `${time} ${label} ${name}${typeof r.msg === 'string' ? r.msg : ''}`;
  let stack = '';
  for (const [k, v] of Object.entries(r)) {
    if (SKIP.has(k) || v === undefined) continue;
    if (k === 'err' && typeof v === 'object' && v !== null) {
      const err = v as { message?: unknown; stack?: unknown; code?: unknown };
      line += ` err=${value(err.message ?? '')}${err.code === undefined ? '' : ` code=${value(err.code)}`}`;
      if (typeof err.stack === 'string')
        stack = `\n    ${err.stack.split('\n').slice(1).join('\n    ').trim()}`;
      continue;
    }
    line += ` ${k}=${value(v)}`;
  }
  return `${line}${stack}\n`;
}

/** A pino destination that writes readable lines to `out` (a terminal). */
export function readableDestination(
  out: { write(text: string): unknown },
  colour: boolean,
): DestinationStream {
  return {
    write(text: string) {
      // pino writes one record per call, ending in a newline.
      out.write(formatRecord(text.endsWith('\n') ? text.slice(0, -1) : text, colour));
    },
  };
}
