/**
 * Validates and compiles what a policy source offers, once per load, and tells the gateway of each
 * good policy (`onApplied`) and each rejected one with every error's path (`onRejected`). A bad
 * policy never replaces a good one. The snapshot that requests read is composed and swapped by
 * `SnapshotOwner` (gateway/snapshot.ts), not here.
 */
import {
  type CompiledPolicy,
  type CompileResult,
  compilePolicy,
  formatIssue,
  type PolicyIssue,
} from './compile.js';
import type { PolicySource, PolicyUpdate } from './source.js';

export type ReloadResult = 'applied' | 'unchanged' | 'rejected';

export interface PolicyEvents {
  /**
   * What this gateway must also find true of a compiled policy (files it names readable here);
   * issues reject the policy like compile errors.
   */
  vet?(policy: CompiledPolicy): readonly PolicyIssue[];
  onApplied?(policy: CompiledPolicy, origin: string, update: PolicyUpdate): void;
  onRejected?(errors: readonly PolicyIssue[], origin: string, update: PolicyUpdate): void;
  onSourceError?(error: Error): void;
}

export class PolicyRuntime {
  /** The last good policy: what a new text is compared with. */
  private lastGood: CompiledPolicy;

  private constructor(
    initial: CompiledPolicy,
    private readonly source: PolicySource,
    private readonly events: PolicyEvents,
  ) {
    this.lastGood = initial;
  }

  /**
   * Reads the source once; a policy that does not compile is an error (the gateway does not start
   * without a good policy). Then follows the source's changes.
   */
  static async start(source: PolicySource, events: PolicyEvents = {}): Promise<PolicyRuntime> {
    let update = await source.read();
    let compiled = compileAndVet(update.text, events);
    const firstErrors = compiled.ok ? [] : compiled.errors;
    // A store whose newest version is bad (written by hand, say): start on its newest good one.
    while (!compiled.ok) {
      source.report?.(update, { result: 'rejected', errors: compiled.errors });
      const older = await source.previous?.(update);
      if (older === undefined) throw new PolicyRejectedError(update.origin, firstErrors);
      events.onRejected?.(compiled.errors, update.origin, update);
      update = older;
      compiled = compileAndVet(update.text, events);
    }
    const runtime = new PolicyRuntime(compiled.policy, source, events);
    events.onApplied?.(compiled.policy, update.origin, update);
    source.report?.(update, { result: 'applied', errors: [] });
    source.watch(
      (u) => runtime.offer(u),
      (e) => events.onSourceError?.(e),
    );
    return runtime;
  }

  /** The last good policy compiled (requests read the gateway's snapshot, never this). */
  get current(): CompiledPolicy {
    return this.lastGood;
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
    const compiled = compileAndVet(update.text, this.events);
    if (!compiled.ok) {
      this.events.onRejected?.(compiled.errors, update.origin, update);
      this.source.report?.(update, { result: 'rejected', errors: compiled.errors });
      return 'rejected';
    }
    if (compiled.policy.sha256 === this.lastGood.sha256) {
      this.source.report?.(update, { result: 'unchanged', errors: [] });
      return 'unchanged';
    }
    this.lastGood = compiled.policy;
    this.events.onApplied?.(compiled.policy, update.origin, update);
    this.source.report?.(update, { result: 'applied', errors: [] });
    return 'applied';
  }
}

function compileAndVet(text: string, events: PolicyEvents): CompileResult {
  const compiled = compilePolicy(text);
  if (!compiled.ok || events.vet === undefined) return compiled;
  const issues = events.vet(compiled.policy);
  return issues.length === 0 ? compiled : { ok: false, errors: issues };
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
