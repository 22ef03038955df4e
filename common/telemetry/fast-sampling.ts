/**
 * The sampling decision of a request's server span, taken before the SDK where it can be: most
 * requests of a sampled-at-1% service are not recorded, and for them the SDK would still build a
 * context, ask the sampler, and wrap a non-recording span (about a microsecond and a half, more
 * than the rest of the request's tracing). Here an unsampled root or an unsampled remote parent
 * costs two ids from a pool of random bytes and one small object. A root that is sampled goes to
 * the SDK with the trace id the decision was taken on, so its own sampler decides the same way.
 */
import { randomFillSync } from 'node:crypto';
import { type Span, type SpanContext, TraceFlags, trace } from '@opentelemetry/api';
import {
  type IdGenerator,
  type Sampler,
  SamplingDecision,
  TraceIdRatioBasedSampler,
} from '@opentelemetry/sdk-trace-base';
import type { SamplerName } from './config.js';

const POOL_BYTES = 4096;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

/**
 * Trace and span ids from random bytes drawn 4 KiB at a time; also the SDK's id generator, which
 * hands out `next` (a root's trace id chosen before the SDK) once when it is set.
 */
export class PooledIds implements IdGenerator {
  private readonly pool = Buffer.allocUnsafe(POOL_BYTES);
  private at = POOL_BYTES;
  next: string | undefined = undefined;

  private hex(bytes: number): string {
    if (this.at + bytes > POOL_BYTES) {
      randomFillSync(this.pool);
      this.at = 0;
    }
    const s = this.pool.toString('hex', this.at, this.at + bytes);
    this.at += bytes;
    return s;
  }

  generateTraceId(): string {
    const chosen = this.next;
    if (chosen !== undefined) {
      this.next = undefined;
      return chosen;
    }
    let id = this.hex(16);
    while (id === ZERO_TRACE) id = this.hex(16);
    return id;
  }

  generateSpanId(): string {
    let id = this.hex(8);
    while (id === ZERO_SPAN) id = this.hex(8);
    return id;
  }
}

/** A W3C traceparent of version 00 whose sampled flag is clear: its trace id; else undefined. */
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

export function unsampledParent(traceparent: string): string | undefined {
  if (traceparent.length !== 55) return undefined;
  const m = TRACEPARENT.exec(traceparent);
  if (m === null) return undefined;
  const traceId = m[1] as string;
  if (traceId === ZERO_TRACE || m[2] === ZERO_SPAN) return undefined;
  return (Number.parseInt(m[3] as string, 16) & TraceFlags.SAMPLED) === 0 ? traceId : undefined;
}

/** What the configured sampler lets this module decide, or undefined (always_on: the SDK decides). */
export interface FastSampling {
  /** Decides roots: the configured ratio sampler (or one that samples nothing). */
  readonly root: Sampler;
  /** parentbased_*: a remote parent that is not sampled means a span that is not recorded. */
  readonly parentBased: boolean;
}

export function fastSamplingOf(name: SamplerName, ratio: number): FastSampling | undefined {
  switch (name) {
    case 'traceidratio':
      return { root: new TraceIdRatioBasedSampler(ratio), parentBased: false };
    case 'parentbased_traceidratio':
      return { root: new TraceIdRatioBasedSampler(ratio), parentBased: true };
    case 'always_off':
      return { root: new TraceIdRatioBasedSampler(0), parentBased: false };
    case 'parentbased_always_off':
      return { root: new TraceIdRatioBasedSampler(0), parentBased: true };
    default:
      return undefined;
  }
}

/** A span that is not recorded: what the SDK returns for a request it does not sample. */
export function unrecorded(traceId: string, spanId: string): Span {
  const context: SpanContext = { traceId, spanId, traceFlags: TraceFlags.NONE };
  return trace.wrapSpanContext(context);
}

/** Whether `fast.root` samples a root with this trace id (the SDK's sampler asks the same). */
export function sampledRoot(fast: FastSampling, traceId: string): boolean {
  return (
    fast.root.shouldSample(undefined as never, traceId, '', 0, {}, []).decision ===
    SamplingDecision.RECORD_AND_SAMPLED
  );
}
