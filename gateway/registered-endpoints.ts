/**
 * Endpoints that registered themselves in Redis (fleet mode), merged into the policy's backend of
 * the same name: `endpointsOf` gives the policy's own list followed by the live, ready
 * registrations. The list is read at start, on every announcement of a change, on a poll behind
 * it, when Redis is back, and when the next registration is due to expire, so that a replica that
 * stops heartbeating leaves rotation within its TTL. A registration under a name the policy does
 * not define is ignored, with one warning per name.
 */
import type { Logger } from '../common/logging.js';
import type { FleetKeys } from '../common/redis/keys.js';
import type { RedisLink } from '../common/redis/link.js';
import { type Registration, RegistrationStore } from '../common/redis/registrations.js';
import type { EndpointSource } from './endpoint-source.js';
import type { CompiledBackend } from './policy/compile.js';

export interface RegisteredEndpointOptions {
  readonly link: RedisLink;
  readonly keys: FleetKeys;
  readonly logger: Logger;
  /** The poll behind the announcements, in ms (default 1000). */
  readonly pollMs?: number;
}

export class RegisteredEndpointSource implements EndpointSource {
  private readonly store: RegistrationStore;
  /** Ready registered origins by backend name, as last read. */
  private byBackend = new Map<string, readonly string[]>();
  private all: readonly Registration[] = [];
  private readonly listeners: (() => void)[] = [];
  private policyBackends = new Set<string>();
  private readonly warned = new Set<string>();
  private poll: NodeJS.Timeout | undefined;
  private expiry: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(private readonly opts: RegisteredEndpointOptions) {
    this.store = new RegistrationStore(opts.link.cmd, opts.keys);
  }

  /** Reads the registrations once (when Redis answers) and follows their changes. */
  async start(): Promise<void> {
    const { link, keys } = this.opts;
    link.subscribe(keys.endpointEvents, () => this.refresh());
    link.onReady(() => this.refresh());
    this.poll = setInterval(() => this.refresh(), this.opts.pollMs ?? 1000);
    this.poll.unref();
    if (link.reachable) {
      this.refresh();
      await this.chain;
    }
  }

  endpointsOf(backend: CompiledBackend): readonly string[] {
    const registered = this.byBackend.get(backend.name);
    if (registered === undefined || registered.length === 0) return backend.endpoints;
    const merged = [...backend.endpoints];
    for (const origin of registered) if (!merged.includes(origin)) merged.push(origin);
    return merged;
  }

  known(names: readonly string[]): void {
    this.policyBackends = new Set(names);
    this.warnUnknown();
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  /** The registrations as last read, for the admin view. */
  get registrations(): readonly Registration[] {
    return this.all;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.poll !== undefined) clearInterval(this.poll);
    if (this.expiry !== undefined) clearTimeout(this.expiry);
  }

  private refresh(): void {
    this.chain = this.chain
      .then(() => this.read())
      .catch(() => {
        // Redis is down: keep the registrations as they were; the link logs the outage.
      });
  }

  private async read(): Promise<void> {
    if (this.closed || !this.opts.link.reachable) return;
    const list = await this.store.list();
    this.all = list;
    const next = new Map<string, string[]>();
    let soonest = Number.POSITIVE_INFINITY;
    for (const r of list) {
      soonest = Math.min(soonest, r.expiresInMs);
      if (!r.ready) continue;
      const origin = normalise(r.origin);
      if (origin === undefined) continue;
      const origins = next.get(r.backend);
      if (origins === undefined) next.set(r.backend, [origin]);
      else if (!origins.includes(origin)) origins.push(origin);
    }
    for (const l of next.values()) l.sort();
    // Read again just after the next registration is due to expire, unless refreshed meanwhile.
    if (this.expiry !== undefined) clearTimeout(this.expiry);
    this.expiry = undefined;
    if (Number.isFinite(soonest) && !this.closed) {
      this.expiry = setTimeout(() => this.refresh(), Math.max(5, soonest + 5));
      this.expiry.unref();
    }
    const changed = !sameLists(this.byBackend, next);
    this.byBackend = next;
    this.warnUnknown();
    if (changed) {
      this.opts.logger.info({ registered: Object.fromEntries(next) }, 'registered endpoints changed');
      for (const l of this.listeners) l();
    }
  }

  private warnUnknown(): void {
    if (this.policyBackends.size === 0) return;
    for (const name of this.byBackend.keys()) {
      if (this.policyBackends.has(name) || this.warned.has(name)) continue;
      this.warned.add(name);
      this.opts.logger.warn(
        { backend: name, endpoints: this.byBackend.get(name) },
        `endpoints registered under backend '${name}', which the policy does not define: ignored`,
      );
    }
  }
}

function normalise(raw: string): string | undefined {
  try {
    const url = new URL(raw);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.origin : undefined;
  } catch {
    return undefined;
  }
}

function sameLists(
  a: ReadonlyMap<string, readonly string[]>,
  b: ReadonlyMap<string, readonly string[]>,
): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) {
    const w = b.get(k);
    if (w === undefined || w.length !== v.length || v.some((x, i) => x !== w[i])) return false;
  }
  return true;
}
