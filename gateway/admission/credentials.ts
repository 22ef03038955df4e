/**
 * The credential of a request, read from its headers: `Authorization: Bearer <token>` or
 * `x-api-key: <key>`. Exactly one credential, in exactly one header: a second Authorization or
 * x-api-key header (node keeps only the first Authorization and joins x-api-key values), both
 * headers at once, another scheme, or a value that is not a token is refused, never guessed at.
 * Pure; the values are never logged or echoed.
 */
import type { IncomingHttpHeaders } from 'node:http';

/** What an API key looks like: the prefix, then base64url (the CLI makes 32 characters, 192 bits). */
export const KEY_PREFIX = 'igk_';

export type Credential =
  | { readonly kind: 'none' }
  /** A credential that cannot be one: `reason` says why, without its value. */
  | { readonly kind: 'malformed'; readonly reason: string }
  | { readonly kind: 'key'; readonly value: string }
  | { readonly kind: 'token'; readonly value: string };

const NONE: Credential = Object.freeze({ kind: 'none' });
/** RFC 7235 token68, as RFC 6750 allows for bearer tokens. */
const TOKEN68 = /^[A-Za-z0-9._~+/-]+=*$/;
const MAX_CREDENTIAL = 8192;

function malformed(reason: string): Credential {
  return { kind: 'malformed', reason };
}

/** Whether a credential header appears more than once among the raw headers (any case). */
function repeated(raw: readonly string[]): boolean {
  let authorization = 0;
  let apiKey = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const h = raw[i] as string;
    if (h.length === 13 && h.toLowerCase() === 'authorization') authorization += 1;
    else if (h.length === 9 && h.toLowerCase() === 'x-api-key') apiKey += 1;
  }
  return authorization > 1 || apiKey > 1;
}

/**
 * The request's credential. `raw` (node's rawHeaders), when given, catches repeated headers that
 * the parsed headers hide.
 */
export function readCredential(headers: IncomingHttpHeaders, raw: readonly string[] | undefined): Credential {
  const authorization = headers.authorization;
  const apiKey = headers['x-api-key'];
  if (authorization === undefined && apiKey === undefined) return NONE;
  if (raw !== undefined && repeated(raw)) {
    return malformed('more than one Authorization or x-api-key header');
  }
  if (authorization !== undefined && apiKey !== undefined) {
    return malformed('both Authorization and x-api-key are set; send one credential');
  }
  if (apiKey !== undefined) {
    const value = Array.isArray(apiKey) ? apiKey.join(',') : apiKey;
    if (value.length === 0 || value.length > MAX_CREDENTIAL || !TOKEN68.test(value)) {
      return malformed('the x-api-key header is empty or not a key');
    }
    return { kind: 'key', value };
  }
  const a = authorization as string;
  const space = a.indexOf(' ');
  const scheme = space < 0 ? a : a.slice(0, space);
  if (scheme.toLowerCase() !== 'bearer') return malformed('the Authorization scheme must be Bearer');
  const value = a.slice(space + 1);
  if (space < 0 || value.length === 0 || value.length > MAX_CREDENTIAL || !TOKEN68.test(value)) {
    return malformed('the bearer credential is empty or not a token');
  }
  return value.startsWith(KEY_PREFIX) ? { kind: 'key', value } : { kind: 'token', value };
}
