/**
 * Endpoint picking: power of two choices on least outstanding requests. Pure: the random source
 * is passed in, so tests are exact. Imports neither fastify nor undici.
 */

export interface Pickable {
  /** Requests sent to this endpoint that have not finished. */
  readonly outstanding: number;
}

/**
 * Picks one of `endpoints`, skipping those in `tried` while any other is left. Two distinct
 * candidates are drawn at random and the one with fewer outstanding requests wins (the first drawn
 * on a tie), which spreads load almost as well as a full scan at O(1) and avoids the herd that
 * "always the least loaded" causes when many pickers share stale counts.
 */
export function pickEndpoint<E extends Pickable>(
  endpoints: readonly E[],
  random: () => number,
  tried?: ReadonlySet<E>,
): E | undefined {
  let pool = endpoints;
  if (tried !== undefined && tried.size > 0) {
    const fresh = endpoints.filter((e) => !tried.has(e));
    if (fresh.length > 0) pool = fresh;
  }
  const n = pool.length;
  if (n <= 1) return pool[0];
  const i = Math.floor(random() * n);
  let j = Math.floor(random() * (n - 1));
  if (j >= i) j += 1;
  const a = pool[i] as E;
  const b = pool[j] as E;
  return b.outstanding < a.outstanding ? b : a;
}
