/**
 * Where policy text comes from, behind one small interface so that the reload logic is tested with
 * a fake and a Redis source can sit beside the file source.
 */

export interface PolicyUpdate {
  readonly text: string;
  /** Where it came from, for logs: a file path, a Redis version. */
  readonly origin: string;
}

export interface PolicySource {
  /** Reads the current policy; throws when it cannot be read at all. */
  read(): Promise<PolicyUpdate>;
  /** Calls `onUpdate` with each later change (possibly repeated text); `onError` when a read fails. */
  watch(onUpdate: (u: PolicyUpdate) => void, onError: (e: Error) => void): void;
  close(): Promise<void>;
}
