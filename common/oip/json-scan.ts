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
