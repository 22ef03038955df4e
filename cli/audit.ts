/**
 * The audit log on the command line: the gateway's `--audit-log` flags, and
 * `infergate audit find REQUEST_ID FILE...`, which prints the lines of that request (which
 * variant, backend model and version answered it, with what status), newest file last.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { AuditOptions } from '../gateway/audit/log.js';
import { RotatingFileSink, StreamSink } from '../gateway/audit/sink.js';
import { parse, positiveInt, setting, UsageError } from './args.js';

export const AUDIT_FLAGS = {
  'audit-log': { type: 'string' },
  'audit-hash': { type: 'boolean' },
  'audit-max-bytes': { type: 'string' },
} as const;

const DEFAULT_MAX_BYTES = 100 * 1024 * 1024;

export function auditOptions(values: {
  'audit-log'?: string | undefined;
  'audit-hash'?: boolean | undefined;
  'audit-max-bytes'?: string | undefined;
}): { options: AuditOptions; toStdout: boolean } | undefined {
  const target = setting(values['audit-log'], 'INFERGATE_AUDIT_LOG');
  if (target === undefined) {
    if (values['audit-hash'] === true || values['audit-max-bytes'] !== undefined)
      throw new UsageError('--audit-hash and --audit-max-bytes need --audit-log');
    return undefined;
  }
  const maxBytes = positiveInt(
    setting(values['audit-max-bytes'], 'INFERGATE_AUDIT_MAX_BYTES', String(DEFAULT_MAX_BYTES)),
    '--audit-max-bytes',
  );
  const toStdout = target === '-';
  return {
    options: {
      sink: toStdout ? new StreamSink(process.stdout) : new RotatingFileSink(target, maxBytes),
      hash: values['audit-hash'] === true,
    },
    toStdout,
  };
}

export const AUDIT_HELP = `infergate audit find REQUEST_ID FILE...

Prints the audit lines of one request (the gateway's --audit-log): time, status, the variant and
the backend model and version that answered, the endpoint, attempts and latency, then the line
itself. Give the rotated files too (FILE FILE.1 ...). Exit 1 when no line has that request id.`;

export async function auditCommand(argv: string[]): Promise<void> {
  const { positionals } = parse(argv, {}, true);
  const [verb, requestId, ...files] = positionals;
  if (verb !== 'find')
    throw new UsageError(verb === undefined ? 'a verb is required: find' : `unknown verb '${verb}'`);
  if (requestId === undefined || files.length === 0) throw new UsageError('find takes REQUEST_ID FILE...');
  const found = await findRequest(requestId, files);
  if (found.length === 0) {
    throw new Error(`no audit line for request '${requestId}' in ${files.join(', ')}`);
  }
  for (const { file, line } of found) process.stdout.write(`${describe(file, line)}\n`);
}

/** Every line of `files` whose requestId is `id`, with the file it was in. */
export async function findRequest(
  id: string,
  files: readonly string[],
): Promise<{ file: string; line: Record<string, unknown> }[]> {
  const needle = JSON.stringify(id);
  const out: { file: string; line: Record<string, unknown> }[] = [];
  for (const file of files) {
    const input = createReadStream(file, 'utf8');
    const done = new Promise<void>((_, reject) => input.on('error', reject));
    const reading = (async () => {
      for await (const text of createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY })) {
        if (!text.includes(needle)) continue;
        try {
          const line = JSON.parse(text) as Record<string, unknown>;
          if (line.requestId === id) out.push({ file, line });
        } catch {
          // A torn last line (the gateway stopped mid-write): not a record.
        }
      }
    })();
    await Promise.race([reading, done]).catch((e: NodeJS.ErrnoException) => {
      throw new Error(`cannot read ${file}: ${e.code ?? e.message}`);
    });
  }
  return out;
}

function describe(file: string, l: Record<string, unknown>): string {
  const served =
    l.variant === undefined
      ? `not routed (${String(l.outcome ?? 'unknown')})`
      : `variant ${String(l.variant)}: ${String(l.backendModel)} version ${String(l.backendVersion ?? '?')} on ${String(l.endpoint ?? 'no endpoint')}`;
  return `${String(l.time)} ${String(l.requestId)} ${String(l.model)} -> ${l.status} ${served}, ${l.attempts} attempt(s), ${l.latencyMs} ms [${file}]\n  ${JSON.stringify(l)}`;
}
