/** The gateway's smaller public types: fleet mode's security parts, the policy in force, its events. */
import type { FailureMode, RateLimitStore } from './admission/gcra.js';
import type { SecurityDeps } from './admission/security.js';
import type { PolicyIssue } from './policy/compile.js';

/** What fleet mode adds to auth and rate limits (the JWT verifier defaults to gateway/jwt.ts). */
export interface GatewaySecurity extends Pick<SecurityDeps, 'keys' | 'tokens'> {
  /** Global buckets; told of decisions taken without Redis, which the metrics count. */
  readonly globalRates?: RateLimitStore & { onFallback: ((mode: FailureMode) => void) | undefined };
}

/** Where the policy in force came from: its origin, store version (fleet mode) and source text. */
export interface PolicyInForce {
  readonly origin: string;
  readonly version: number | undefined;
  readonly text: string;
}

export type PolicyEvent =
  | { readonly type: 'applied'; readonly sha256: string; readonly origin: string }
  | { readonly type: 'rejected'; readonly errors: readonly PolicyIssue[]; readonly origin: string };
