import { readFile } from 'node:fs/promises';
import { compilePolicy, formatIssue } from '../gateway/policy/compile.js';
import { policyJsonSchema } from '../gateway/policy/schema.js';
import { parse, UsageError } from './args.js';

export const POLICY_HELP = `infergate policy validate FILE   schema and cross-reference check; every error with its field path, exit 1
infergate policy schema          print the policy JSON Schema (policies/policy.schema.json)`;

export async function policyCommand(argv: string[]): Promise<void> {
  const { positionals } = parse(argv, {}, true);
  const [verb, ...rest] = positionals;
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

/** The policy is invalid: its errors are already printed; exit 1. */
export class PolicyInvalid extends Error {}
