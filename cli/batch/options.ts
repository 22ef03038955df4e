/** What one run of `infergate batch` is told (cli/batch.ts parses the flags into it). */
export interface BatchOptions {
  readonly url: string;
  readonly model: string;
  readonly input: string;
  readonly output: string;
  readonly format: 'oip' | 'rows';
  readonly concurrency: number;
  readonly retries: number;
  /** Stop once more lines than this are answered with errors; undefined: never. */
  readonly maxErrors: number | undefined;
  readonly ordered: boolean;
  readonly shard: { readonly index: number; readonly count: number };
  readonly reorderBuffer: number;
  /** Lines sent as one request (1: each alone). */
  readonly pack: number;
  readonly timeoutMs: number;
  /** Numeric tensors sent as bytes (the binary extension) instead of JSON numbers. */
  readonly binary: boolean;
  readonly apiKey: string | undefined;
  readonly overwrite: boolean;
  /** Back-pressure retried for this long without any answer before a line is given up. */
  readonly stallMs: number;
  readonly progress: {
    readonly tty: boolean;
    readonly stream: NodeJS.WritableStream;
    readonly intervalMs: number;
  };
}

/** How a caller stops a run early (a signal): it drains what is in flight and checkpoints. */
export interface BatchControl {
  stop(reason: string): void;
}
