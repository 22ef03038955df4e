/**
 * Metrics of auth and rate limits, on the gateway's registry. Labels carry reasons, scopes and
 * model names of the policy, never a key, a token or a key id (ids are many and user-chosen).
 */
import { Counter, type Registry } from 'prom-client';
import type { AuthRefusal } from './admission/auth.js';

const AUTH_REFUSALS: readonly AuthRefusal[] = [
  'missing',
  'malformed',
  'unknown_key',
  'expired_key',
  'revoked_key',
  'invalid_token',
  'forbidden',
];

export class SecurityMetrics {
  readonly authRefusals: Counter<'reason'>;
  readonly rateLimited: Counter<'model' | 'scope'>;
  /** Decisions made without Redis (global mode, Redis down), by the policy's failure mode. */
  readonly rateLimitFallback: Counter<'failure_mode'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.authRefusals = new Counter({
      name: 'infergate_auth_refusals_total',
      help: 'Requests refused by the auth stage, by reason (missing, malformed, unknown_key, expired_key, revoked_key, invalid_token, forbidden).',
      labelNames: ['reason'],
      registers,
    });
    this.rateLimited = new Counter({
      name: 'infergate_rate_limited_total',
      help: 'Requests refused with 429, by model and the bucket that was empty (model, key, key-model).',
      labelNames: ['model', 'scope'],
      registers,
    });
    this.rateLimitFallback = new Counter({
      name: 'infergate_rate_limit_fallback_total',
      help: 'Global rate-limit decisions taken while Redis was unreachable: failure_mode open (local share of the limit) or closed (refused).',
      labelNames: ['failure_mode'],
      registers,
    });
    for (const reason of AUTH_REFUSALS) this.authRefusals.inc({ reason }, 0);
  }
}
