/**
 * A JSON body to a document, safely: the nesting depth is checked on the bytes before anything
 * is parsed. Throws CodecError.
 */
import { CodecError } from './codec-error.js';

export const DEFAULT_MAX_JSON_DEPTH = 64;

const textDecoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Measures the nesting depth of a JSON text without parsing it, stopping as soon as `limit` is
 * passed. JSON.parse would happily build millions of nested arrays from a hostile body (each one
 * an allocation), so the depth is checked on the bytes first. Brackets inside strings do not count.
 *
 * Returns true as soon as the depth passes `limit`.
 */
export function jsonDepthExceeds(bytes: Uint8Array, limit: number): boolean {
  let depth = 0;
  let inString = false;
  const n = bytes.length;
  for (let i = 0; i < n; i++) {
    const c = bytes[i]!;
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      if (++depth > limit) return true;
    } else if (c === 0x5d /* ] */ || c === 0x7d /* } */) depth--;
  }
  return false;
}

/** JSON.parse behind a nesting-depth check on the bytes. Throws CodecError. */
export function parseJson(bytes: Uint8Array, maxDepth: number = DEFAULT_MAX_JSON_DEPTH): unknown {
  if (jsonDepthExceeds(bytes, maxDepth)) {
    throw new CodecError('NESTING_TOO_DEEP', `JSON body is nested more than ${maxDepth} levels deep`);
  }
  let text: string;
  try {
    text = textDecoder.decode(bytes);
  } catch {
    throw new CodecError('MALFORMED_JSON', 'body is not valid UTF-8');
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CodecError('MALFORMED_JSON', `body is not valid JSON: ${(e as Error).message}`);
  }
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
