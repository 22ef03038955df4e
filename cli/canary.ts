/**
 * `infergate canary status|pause|resume|abort|promote MODEL`: the progressive rollout of a model,
 * through a gateway's admin port (file mode: every gateway runs its own controllers).
 */
import { EXIT, ExitError, parse, setting, UsageError } from './args.js';

export const CANARY_HELP = `infergate canary status [MODEL] [--admin URL] [--json]
infergate canary pause|resume|abort|promote MODEL [--admin URL] [--json]
    the progressive rollout of a model, through a gateway's admin port (--admin, or
    INFERGATE_ADMIN_URL; default http://127.0.0.1:9901). pause holds the weight and stops judging;
    resume starts the step over; abort sets the canary's weight to 0; promote to 100.
Exit status: 0 ok, 1 failure (no such rollout, gateway unreachable), 2 usage, 3 the rollout's
state refuses the command (for example resume when it is not paused).`;

const VERBS = new Set(['status', 'pause', 'resume', 'abort', 'promote']);

interface CanaryView {
  model: string;
  variant: string;
  baseline: string;
  state: string;
  step: number;
  steps: number[];
  weight: number;
  stepElapsedSeconds: number;
  stepSeconds: number;
  minSamples: number;
  samples: { canary: { requests: number; errors: number }; baseline: { requests: number; errors: number } };
  reason: string | null;
  lastJudgement: { verdict: string; reason?: string } | null;
}

export async function canaryCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, { admin: { type: 'string' }, json: { type: 'boolean' } }, true);
  const [verb, model, ...extra] = positionals;
  if (verb === undefined || !VERBS.has(verb)) throw new UsageError(`unknown verb '${verb ?? ''}'`);
  if (extra.length > 0) throw new UsageError(`unexpected argument '${extra[0]}'`);
  if (verb !== 'status' && model === undefined) throw new UsageError(`canary ${verb} needs a MODEL`);
  const base = setting(values.admin, 'INFERGATE_ADMIN_URL', 'http://127.0.0.1:9901').replace(/\/$/, '');
  const m = model === undefined ? undefined : encodeURIComponent(model);
  const url =
    verb === 'status'
      ? `${base}/admin/canary${m === undefined ? '' : `/${m}`}`
      : `${base}/admin/canary/${m}/${verb}`;
  let res: Response;
  try {
    res = await fetch(url, {
      method: verb === 'status' ? 'GET' : 'POST',
      signal: AbortSignal.timeout(10_000),
    });
  } catch (e) {
    throw new Error(`cannot reach the gateway's admin port at ${base}: ${(e as Error).message}`);
  }
  const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  if (res.status === 400) throw new ExitError(EXIT.conflict, String(body.error ?? 'refused'));
  if (res.status !== 200) throw new Error(String(body.error ?? `the gateway answered ${res.status}`));
  if (values.json) {
    process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
    return;
  }
  const views = (Array.isArray(body.rollouts) ? body.rollouts : [body]) as CanaryView[];
  if (views.length === 0) process.stdout.write('no canary rollouts\n');
  for (const v of views) process.stdout.write(`${describe(v)}\n`);
}

function describe(v: CanaryView): string {
  const lines = [
    `${v.model}: ${v.state}, ${v.variant} at ${v.weight}% against ${v.baseline} (step ${v.step + 1} of ${v.steps.length}: ${v.steps.join(', ')})`,
    `  step ${v.stepElapsedSeconds.toFixed(1)} of ${v.stepSeconds} s; samples canary ${v.samples.canary.requests} (${v.samples.canary.errors} errors), baseline ${v.samples.baseline.requests} (${v.samples.baseline.errors} errors), ${v.minSamples} needed each`,
  ];
  if (v.lastJudgement !== null)
    lines.push(
      `  last judgement: ${v.lastJudgement.verdict}${v.lastJudgement.reason ? ` (${v.lastJudgement.reason})` : ''}`,
    );
  if (v.reason !== null) lines.push(`  reason: ${v.reason}`);
  return lines.join('\n');
}
