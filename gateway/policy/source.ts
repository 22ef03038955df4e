/**
 * Where policy text comes from, behind one small interface so that the reload logic is tested with
 * a fake, and the file source (`file-source.ts`) and the Redis source (`redis-source.ts`) sit side
 * by side.
 */
import type { PolicyIssue } from './compiled.js';

export interface PolicyUpdate {
  readonly text: string;
  /** Where it came from, for logs: a file path, a Redis version. */
  readonly origin: string;
  /** The store's version number (fleet mode). */
  readonly version?: number;
}

/** What the runtime did with an update: served it, found it equal to the one in force, or refused it. */
export interface UpdateOutcome {
  readonly result: 'applied' | 'unchanged' | 'rejected';
  /** The refusal's errors (with their field paths); empty otherwise. */
  readonly errors: readonly PolicyIssue[];
}

export interface PolicySource {
  /** Reads the current policy; throws when it cannot be read at all. */
  read(): Promise<PolicyUpdate>;
  /** Calls `onUpdate` with each later change (possibly repeated text); `onError` when a read fails. */
  watch(onUpdate: (u: PolicyUpdate) => void, onError: (e: Error) => void): void;
  /**
   * Told what became of each update, the first read included (fleet mode acknowledges it: ACK or
   * NACK with the errors, as xDS does).
   */
  report?(update: PolicyUpdate, outcome: UpdateOutcome): void;
  /**
   * At start, when the current policy does not compile: an older one to start on instead (the
   * store's newest good version), or undefined. Later, a bad update simply leaves the last good one.
   */
  previous?(rejected: PolicyUpdate): Promise<PolicyUpdate | undefined>;
  /** A source behind a network connection (Redis) says whether it reaches its store now. */
  reachable?(): boolean;
  close(): Promise<void>;
}
