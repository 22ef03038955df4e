import { readFile } from 'node:fs/promises';
import { compilePolicy, formatIssue } from '../gateway/policy/compile.js';
import { policyJsonSchema } from '../gateway/policy/schema.js';
import { parse, UsageError } from './args.js';
import { FLEET_FLAGS, fleetTarget, REDIS_TLS_FLAGS } from './fleet.js';
import {
  applyCommand,
  diffCommand,
  type FleetIo,
  getCommand,
  historyCommand,
  PolicyInvalid,
  rollbackCommand,
  statusCommand,
} from './policy-fleet.js';

export { PolicyInvalid };

export const POLICY_HELP = `infergate policy validate FILE   schema and cross-reference check; every error with its field path, exit 1
infergate policy schema          print the policy JSON Schema (policies/policy.schema.json)

Fleet mode (every command takes --redis URL or INFERGATE_REDIS_URL, and --redis-prefix P; over TLS,
a rediss:// URL with --redis-tls-ca FILE [--redis-tls-cert FILE --redis-tls-key FILE]):
infergate policy apply FILE [--message M] [--if-version N] [--wait] [--timeout S] [--author A]
    validate locally (exit 1, nothing written), then write a new version and announce it;
    --if-version N refuses when the store is no longer at version N (exit 3);
    --wait waits until every live gateway acknowledges it, prints a table, and exits 5 when one
    refuses it or 6 when --timeout (30 s) runs out
infergate policy get [--version N]           the YAML of a version (default: the newest) on stdout
infergate policy history [--limit N]         version, time, author, message, sha256 (newest first)
infergate policy diff FILE                   FILE against the newest version, in words and in lines
infergate policy diff --from A --to B        two versions
infergate policy rollback [VERSION] [--message M] [--wait] [--timeout S]
    apply an older version again as a new version (default: the one before the newest)
infergate policy status                      each live gateway: the version it serves, its last
                                             ACK or NACK, how far behind it is
Exit status: 0 ok, 1 invalid policy or failure, 2 usage, 3 conflict (--if-version),
4 Redis unreachable, 5 a gateway refused (--wait), 6 timed out (--wait).`;

const FLEET_VERBS = new Set(['apply', 'get', 'history', 'diff', 'rollback', 'status']);

/** The option table of `infergate policy` (the deployment tests check manifests against it). */
export const POLICY_OPTIONS = {
  ...FLEET_FLAGS,
  ...REDIS_TLS_FLAGS,
  message: { type: 'string' },
  'if-version': { type: 'string' },
  wait: { type: 'boolean' },
  timeout: { type: 'string' },
  version: { type: 'string' },
  from: { type: 'string' },
  to: { type: 'string' },
  limit: { type: 'string' },
  author: { type: 'string' },
} as const;

export async function policyCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, POLICY_OPTIONS, true);
  const [verb, ...rest] = positionals;
  if (verb !== undefined && FLEET_VERBS.has(verb)) {
    const fleet = fleetTarget(values);
    if (fleet === undefined) throw new UsageError(`${verb} needs --redis URL (or INFERGATE_REDIS_URL)`);
    const { target, keys } = fleet;
    const io: FleetIo = {
      out: (t) => process.stdout.write(t),
      err: (t) => process.stderr.write(t),
    };
    const [arg, ...extra] = rest;
    if (extra.length > 0) throw new UsageError(`${verb}: unexpected '${extra.join(' ')}'`);
    switch (verb) {
      case 'apply':
        if (arg === undefined) throw new UsageError('apply takes FILE');
        return applyCommand(target, keys, arg, values, io);
      case 'get':
        if (arg !== undefined) throw new UsageError('get takes no FILE (use --version N)');
        return getCommand(target, keys, values, io);
      case 'history':
        if (arg !== undefined) throw new UsageError('history takes no arguments');
        return historyCommand(target, keys, values, io);
      case 'diff':
        return diffCommand(target, keys, arg, values, io);
      case 'rollback':
        return rollbackCommand(target, keys, arg, values, io);
      default:
        if (arg !== undefined) throw new UsageError('status takes no arguments');
        return statusCommand(target, keys, io);
    }
  }
  if (verb === 'validate') {
    const [file, ...extra] = rest;
    if (file === undefined || extra.length > 0) throw new UsageError('validate takes one FILE');
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      throw new Error(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    const result = compilePolicy(text);
    if (!result.ok) {
      for (const issue of result.errors) process.stderr.write(`${formatIssue(issue)}\n`);
      throw new PolicyInvalid(
        `${file}: ${result.errors.length} error${result.errors.length === 1 ? '' : 's'}`,
      );
    }
    for (const w of result.policy.warnings) process.stderr.write(`warning: ${formatIssue(w)}\n`);
    const p = result.policy;
    process.stdout.write(
      `${file}: valid (${p.models.size} model${p.models.size === 1 ? '' : 's'}, ${p.backends.size} backend${p.backends.size === 1 ? '' : 's'}, sha256 ${p.sha256.slice(0, 12)})\n`,
    );
    return;
  }
  if (verb === 'schema') {
    if (rest.length > 0) throw new UsageError('schema takes no arguments');
    process.stdout.write(`${JSON.stringify(policyJsonSchema(), null, 2)}\n`);
    return;
  }
  throw new UsageError(verb === undefined ? 'a verb is required' : `unknown verb '${verb}'`);
}
