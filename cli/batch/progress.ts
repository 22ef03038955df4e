/**
 * Progress of `infergate batch`, on stderr: a bar (cli-progress) on a terminal, with lines done,
 * rate, errors and ETA; otherwise one plain line every interval. Progress is measured in input
 * bytes (the size is known without counting lines first).
 */
import cliProgress from 'cli-progress';

export interface ProgressSample {
  /** Input bytes behind the watermark. */
  readonly bytes: number;
  readonly totalBytes: number;
  readonly lines: number;
  readonly errors: number;
  /** Lines per second in this run. */
  readonly rate: number;
  readonly window: number;
}

export interface Progress {
  update(s: ProgressSample): void;
  stop(): void;
}

function eta(s: ProgressSample, startBytes: number, seconds: number): string {
  const done = s.bytes - startBytes;
  if (done <= 0 || seconds <= 0) return '?';
  const left = ((s.totalBytes - s.bytes) / done) * seconds;
  if (left < 90) return `${Math.ceil(left)}s`;
  if (left < 5400) return `${Math.ceil(left / 60)}m`;
  return `${(left / 3600).toFixed(1)}h`;
}

export function startProgress(opts: {
  readonly tty: boolean;
  readonly stream: NodeJS.WritableStream;
  readonly intervalMs: number;
  readonly startBytes: number;
  readonly now: () => number;
}): Progress {
  const started = opts.now();
  if (opts.tty) {
    const bar = new cliProgress.SingleBar(
      {
        stream: opts.stream as NodeJS.WriteStream,
        format:
          ' {bar} {percentage}% | {lines} lines | {rate}/s | {errors} errors | window {window} | ETA {etaText}',
        hideCursor: true,
        etaBuffer: 50,
      },
      cliProgress.Presets.shades_classic,
    );
    let begun = false;
    return {
      update(s) {
        const payload = {
          lines: s.lines,
          rate: s.rate.toFixed(0),
          errors: s.errors,
          window: s.window,
          etaText: eta(s, opts.startBytes, (opts.now() - started) / 1000),
        };
        if (!begun) {
          bar.start(Math.max(1, s.totalBytes), s.bytes, payload);
          begun = true;
        } else bar.update(s.bytes, payload);
      },
      stop() {
        if (begun) bar.stop();
      },
    };
  }
  let last = Number.NEGATIVE_INFINITY;
  return {
    update(s) {
      const now = opts.now();
      if (now - last < opts.intervalMs) return;
      last = now;
      const pct = s.totalBytes === 0 ? 100 : (s.bytes / s.totalBytes) * 100;
      opts.stream.write(
        `batch: ${s.lines} lines (${pct.toFixed(1)}%), ${s.rate.toFixed(1)}/s, ${s.errors} errors, window ${s.window}, ETA ${eta(s, opts.startBytes, (now - started) / 1000)}\n`,
      );
    },
    stop() {},
  };
}
