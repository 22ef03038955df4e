/**
 * Where a backend's endpoints come from. Today: the policy's own list (`StaticEndpointSource`).
 * In fleet mode, replicas that register themselves in a store with a TTL join the same seam; a
 * change makes the snapshot owner compose a new snapshot with the same policy.
 */
import type { CompiledBackend } from './policy/compile.js';

export interface EndpointSource {
  /** The origins of a backend now (normalised, as the policy compiler writes them). */
  endpointsOf(backend: CompiledBackend): readonly string[];
  /** Told the policy's backend names before each composition (a source may warn of others). */
  known?(names: readonly string[]): void;
  /** Told when the endpoints of any backend changed. */
  onChange(listener: () => void): void;
  close(): Promise<void>;
}

/** The endpoints written in the policy; they change only with the policy. */
export class StaticEndpointSource implements EndpointSource {
  endpointsOf(backend: CompiledBackend): readonly string[] {
    return backend.endpoints;
  }

  onChange(): void {}

  async close(): Promise<void> {}
}
