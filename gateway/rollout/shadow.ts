/**
 * Shadow mirroring: after the client's answer is written, a share of a model's requests is sent
 * again, as the same bytes with the same headers plus `x-infergate-shadow: 1`, to the shadow
 * variant (and a share, the noise floor, to the primary variant itself); both answers are decoded
 * and compared output by output. A copy goes straight to an endpoint's connection pool: no
 * admission stage, breaker, retry budget or request metric of the primary sees it. Copies beyond
 * `maxInFlight` are dropped and counted, never queued.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Clock } from '../../common/clock.js';
import type { Logger } from '../../common/logging.js';
import type { TensorData } from '../../common/oip/datatypes.js';
import { jsonData } from '../../common/oip/json-values.js';
import type { InferResponse } from '../../common/oip/messages.js';
import { decodeInferResponse } from '../../common/oip/response.js';
import type { CompiledShadow } from '../policy/compiled.js';
import { forwardHeaders } from '../proxy.js';
import type { RandomSource } from '../router.js';
import type { ShadowMirror, VariantState } from '../snapshot.js';
import { dispatchAttempt } from '../upstream/attempt.js';
import type { ForwardResponse } from '../upstream/forward.js';
import { TimeoutError } from '../upstream/outcome.js';
import { pick } from '../upstream/picker.js';
import { compareResponses } from './compare.js';
import type { RolloutMetrics, ShadowOutcome } from './metrics.js';
import { type Disagreement, ShadowTally } from './shadow-tally.js';

/** Values of a disagreeing output logged when the policy asks for tensor data. */
const LOGGED_VALUES = 16;

export interface ShadowEnv {
  readonly clock: Clock;
  readonly random: RandomSource;
  readonly logger: Logger;
  readonly metrics: RolloutMetrics;
}

/** What outlives a snapshot for one model's shadow: copies in flight and the tallies. */
export class ShadowState {
  inFlight = 0;
  /** Variants with series, to drop when the model's shadow goes. */
  readonly counted = new Set<string>();
  readonly tallies = new Map<string, ShadowTally>();
  /** The noise floor: the primary variants compared with themselves. */
  readonly noise = new Map<string, ShadowTally>();

  constructor(
    readonly model: string,
    readonly key: string,
  ) {}

  tally(kind: 'shadow' | 'noise', variant: string, classifications: ReadonlySet<string>): ShadowTally {
    const map = kind === 'shadow' ? this.tallies : this.noise;
    let t = map.get(variant);
    if (t === undefined) {
      t = new ShadowTally(variant, classifications);
      map.set(variant, t);
    }
    return t;
  }
}

/** One snapshot's shadow of one model: its compiled section, the shadow variant's endpoints. */
export class ShadowPlan implements ShadowMirror {
  constructor(
    private readonly config: CompiledShadow,
    private readonly target: VariantState,
    private readonly state: ShadowState,
    private readonly env: ShadowEnv,
  ) {}

  mirror(
    id: string,
    headers: IncomingHttpHeaders,
    primary: VariantState,
    body: Buffer,
    answer: ForwardResponse,
  ): void {
    // A copy is never copied again (a shadow variant that is another gateway cannot loop).
    if (
      answer.status !== 200 ||
      primary.variant === this.target.variant ||
      headers['x-infergate-shadow'] !== undefined
    )
      return;
    const { random } = this.env;
    if (random() * 100 < this.config.percent) this.send('shadow', this.target, id, headers, body, answer);
    if (this.config.noiseFloorPercent > 0 && random() * 100 < this.config.noiseFloorPercent) {
      this.send('noise', primary, id, headers, body, answer);
    }
  }

  private send(
    kind: 'shadow' | 'noise',
    to: VariantState,
    id: string,
    headers: IncomingHttpHeaders,
    body: Buffer,
    answer: ForwardResponse,
  ): void {
    const { clock, random } = this.env;
    const variant = to.variant.name;
    if (this.state.inFlight >= this.config.maxInFlight) {
      this.count(variant, 'dropped');
      return;
    }
    const endpoint = pick(to.endpoints, clock.now(), random, undefined, undefined);
    if (endpoint === undefined) {
      this.count(variant, 'error');
      return;
    }
    this.state.inFlight += 1;
    const out = forwardHeaders(id, headers);
    out['x-infergate-shadow'] = '1';
    let timedOut = false;
    let timer: unknown;
    let done = false;
    const attempt = dispatchAttempt(
      endpoint.dispatcher,
      endpoint.origin,
      { method: 'POST', path: to.variant.inferPath, headers: out, body },
      (r) => {
        done = true;
        this.state.inFlight -= 1;
        if (timer !== undefined) clock.clearTimer(timer);
        if ('error' in r) {
          this.count(variant, timedOut ? 'timeout' : 'error');
          return;
        }
        if (r.status !== 200) {
          this.count(variant, 'error');
          return;
        }
        this.compare(kind, variant, id, answer, r.body, r.headers['inference-header-content-length']);
      },
    );
    if (done) return;
    timer = clock.setTimer(() => {
      timedOut = true;
      attempt.abort(new TimeoutError('shadow copy took longer than its timeoutMs'));
    }, this.config.timeoutMs);
  }

  private compare(
    kind: 'shadow' | 'noise',
    variant: string,
    id: string,
    answer: ForwardResponse,
    body: Buffer,
    headerLength: string | string[] | undefined,
  ): void {
    let primary: InferResponse;
    let shadow: InferResponse;
    try {
      primary = decodeInferResponse(answer.body, single(answer.headers['inference-header-content-length']));
      shadow = decodeInferResponse(body, single(headerLength));
    } catch (err) {
      this.env.logger.warn(
        { reqId: id, model: this.state.model, variant, err },
        'shadow: an answer did not decode',
      );
      this.count(variant, 'error');
      return;
    }
    const c = compareResponses(primary, shadow, this.config.classifications, this.config.tolerance);
    this.count(variant, 'compared');
    let maxAbs = 0;
    for (const o of c.outputs) if (o.maxAbs > maxAbs) maxAbs = o.maxAbs;
    this.env.metrics.shadowMaxAbs.observe({ model: this.state.model, variant }, maxAbs);
    const tally = this.state.tally(kind, variant, this.config.classifications);
    const data = !c.agrees && this.config.logTensors ? tensorData(primary, shadow) : undefined;
    if (tally.add(c, id, new Date(), data)) {
      const sample = tally.disagreements[tally.disagreements.length - 1] as Disagreement;
      this.env.logger.info(
        {
          reqId: id,
          model: this.state.model,
          variant,
          kind,
          outputs: sample.outputs,
          ...(data ? { data } : {}),
        },
        kind === 'shadow' ? 'shadow: outputs disagree' : 'shadow: the primary disagrees with itself',
      );
    }
  }

  private count(variant: string, outcome: ShadowOutcome): void {
    this.state.counted.add(variant);
    this.env.metrics.shadowRequests.inc({ model: this.state.model, variant, outcome });
  }
}

function single(h: string | string[] | undefined): string | undefined {
  return Array.isArray(h) ? h[0] : h;
}

function tensorData(primary: InferResponse, shadow: InferResponse): NonNullable<Disagreement['data']> {
  const out: Record<string, { primary: unknown[]; shadow: unknown[] }> = {};
  for (const a of primary.outputs) {
    const b = shadow.outputs.find((o) => o.name === a.name);
    out[a.name] = {
      primary: jsonData(a.data.slice(0, LOGGED_VALUES) as TensorData),
      shadow: b === undefined ? [] : jsonData(b.data.slice(0, LOGGED_VALUES) as TensorData),
    };
  }
  return out;
}
