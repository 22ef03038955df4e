/**
 * One error catalogue for both tiers. Every error a client can see is declared once with a stable
 * code, an HTTP status and a one-line description; `docs/errors.md` documents each code and a test
 * checks that the two agree.
 */

export interface ErrorDef {
  readonly code: string;
  readonly status: number;
  readonly description: string;
}

export function defineErrors<K extends string>(
  defs: Record<K, readonly [status: number, description: string]>,
): Readonly<Record<K, ErrorDef>> {
  const out = {} as Record<K, ErrorDef>;
  for (const code of Object.keys(defs) as K[]) {
    const [status, description] = defs[code];
    out[code] = Object.freeze({ code, status, description });
  }
  return Object.freeze(out);
}

export interface ApiErrorOptions {
  /** Path of the offending field in the request, e.g. `inputs[0].shape[1]`. */
  field?: string;
  /** Seconds after which the client may retry (sets `Retry-After`). */
  retryAfterSeconds?: number;
  cause?: unknown;
}

/** An error whose message is safe to show to the client. */
export class ApiError extends Error {
  readonly code: string;
  readonly statusCode: number;
  readonly field: string | undefined;
  readonly retryAfterSeconds: number | undefined;

  constructor(def: ErrorDef, message: string, opts: ApiErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'ApiError';
    this.code = def.code;
    this.statusCode = def.status;
    this.field = opts.field;
    this.retryAfterSeconds = opts.retryAfterSeconds;
  }

  toJSON(): { error: string; code: string; field?: string } {
    return this.field === undefined
      ? { error: this.message, code: this.code }
      : { error: this.message, code: this.code, field: this.field };
  }
}
