/**
 * The policy in force: compiled once per load into an immutable snapshot; a reload swaps one
 * reference, so a request keeps the snapshot it started with. A bad policy never replaces a good
 * one.
 */
import { type CompiledPolicy, compilePolicy, formatIssue, type PolicyIssue } from './compile.js';
import type { PolicySource, PolicyUpdate } from './source.js';

export type ReloadResult = 'applied' | 'unchanged' | 'rejected';

export interface PolicyEvents {
  onApplied?(policy: CompiledPolicy, origin: string): void;
  onRejected?(errors: readonly PolicyIssue[], origin: string): void;
  onSourceError?(error: Error): void;
}

export class PolicyRuntime {
  private snapshot: CompiledPolicy;

  private constructor(
    initial: CompiledPolicy,
    private readonly events: PolicyEvents,
  ) {
    this.snapshot = initial;
  }

  /**
   * Reads the source once; a policy that does not compile is an error (the gateway does not start
   * without a good policy). Then follows the source's changes.
   */
  static async start(source: PolicySource, events: PolicyEvents = {}): Promise<PolicyRuntime> {
    const first = await source.read();
    const compiled = compilePolicy(first.text);
    if (!compiled.ok) throw new PolicyRejectedError(first.origin, compiled.errors);
    const runtime = new PolicyRuntime(compiled.policy, events);
    events.onApplied?.(compiled.policy, first.origin);
    source.watch(
      (u) => runtime.offer(u),
      (e) => events.onSourceError?.(e),
    );
    return runtime;
  }

  /** The snapshot in force now; take it once per request. */
  get current(): CompiledPolicy {
    return this.snapshot;
  }

  /** Compiles new text; swaps it in when it is good and differs from the one in force. */
  offer(update: PolicyUpdate): ReloadResult {
    try {
      return this.apply(update);
    } catch (e) {
      // Whatever happens in a listener, a reload never takes the gateway down.
      this.events.onSourceError?.(e as Error);
      return 'rejected';
    }
  }

  private apply(update: PolicyUpdate): ReloadResult {
    const compiled = compilePolicy(update.text);
    if (!compiled.ok) {
      this.events.onRejected?.(compiled.errors, update.origin);
      return 'rejected';
    }
    if (compiled.policy.sha256 === this.snapshot.sha256) return 'unchanged';
    this.snapshot = compiled.policy;
    this.events.onApplied?.(compiled.policy, update.origin);
    return 'applied';
  }
}

export class PolicyRejectedError extends Error {
  constructor(
    readonly origin: string,
    readonly errors: readonly PolicyIssue[],
  ) {
    super(`${origin}: ${errors.map(formatIssue).join('; ')}`);
    this.name = 'PolicyRejectedError';
  }
}
