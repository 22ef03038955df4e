/**
 * Endpoint picking as a pipeline of small named steps: filters (available now, not refused for
 * this request, untried first), then a pick (power of two choices on a load). Pure: the clock's
 * time and the random source are passed in, so tests are exact. Imports neither fastify nor undici.
 *
 * Each filter returns the very array it was given when it drops nothing, so a request whose
 * endpoints are all available allocates nothing here. A scorer (queue depth, say) joins as one
 * more load function for the pick step: lower is better, read per candidate, no allocation.
 */

export interface Pickable {
  /** Requests sent to this endpoint that have not finished. */
  readonly outstanding: number;
}

export interface Filterable extends Pickable {
  /** Whether it may take traffic now (healthy, not ejected, breaker not open, not backing off). */
  available(now: number): boolean;
}

/** What the pick step compares between two candidates: lower wins. */
export type Load<E> = (endpoint: E) => number;

/** Today's load: requests outstanding at the endpoint. */
export const byOutstanding: Load<Pickable> = (e) => e.outstanding;

/** Filter: the endpoints that may take traffic now. */
export function availableNow<E extends Filterable>(endpoints: readonly E[], now: number): readonly E[] {
  for (let i = 0; i < endpoints.length; i++) {
    if (!(endpoints[i] as E).available(now)) return endpoints.filter((e) => e.available(now));
  }
  return endpoints;
}

/** Filter: not refused for this request (their breaker refused a call it made). */
export function notRefused<E>(endpoints: readonly E[], refused: ReadonlySet<E> | undefined): readonly E[] {
  if (refused === undefined || refused.size === 0) return endpoints;
  return endpoints.filter((e) => !refused.has(e));
}

/** Filter: not tried by this request, while any untried one is left (a retry may go back). */
export function untriedFirst<E>(endpoints: readonly E[], tried: ReadonlySet<E> | undefined): readonly E[] {
  if (tried === undefined || tried.size === 0) return endpoints;
  const fresh = endpoints.filter((e) => !tried.has(e));
  return fresh.length > 0 ? fresh : endpoints;
}

/**
 * Pick: two distinct candidates drawn at random, the one with the lower load wins (the first drawn
 * on a tie). Spreads load almost as well as a full scan at O(1), and avoids the herd that "always
 * the least loaded" causes when many pickers share stale counts.
 */
export function powerOfTwo<E>(endpoints: readonly E[], random: () => number, load: Load<E>): E | undefined {
  const n = endpoints.length;
  if (n <= 1) return endpoints[0];
  const i = Math.floor(random() * n);
  let j = Math.floor(random() * (n - 1));
  if (j >= i) j += 1;
  const a = endpoints[i] as E;
  const b = endpoints[j] as E;
  return load(b) < load(a) ? b : a;
}

/** The endpoint for one attempt of a request: every filter, then the pick. */
export function pick<E extends Filterable>(
  endpoints: readonly E[],
  now: number,
  random: () => number,
  refused: ReadonlySet<E> | undefined,
  tried: ReadonlySet<E> | undefined,
): E | undefined {
  const candidates = untriedFirst(notRefused(availableNow(endpoints, now), refused), tried);
  return powerOfTwo(candidates, random, byOutstanding);
}
