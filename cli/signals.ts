import type { Logger } from '../common/logging.js';

/**
 * On SIGTERM or SIGINT: run `shutdown` (readiness false, in-flight requests finish), then exit 0.
 * If it takes longer than `timeoutMs`, exit 1 so an orchestrator sees the drain was cut short.
 * A second signal exits at once. A process started by `infergate up` (with an IPC channel) also
 * shuts down when its parent goes away, so no replica outlives the stack.
 */
export function onShutdownSignal(logger: Logger, timeoutMs: number, shutdown: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal, timeoutMs }, 'draining');
    const timer = setTimeout(() => {
      logger.error({ timeoutMs }, 'drain timed out');
      process.exit(1);
    }, timeoutMs);
    timer.unref();
    shutdown().then(
      () => {
        logger.info('drained; exiting');
        process.exit(0);
      },
      (e: unknown) => {
        logger.error({ err: e }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
  if (process.connected) process.once('disconnect', () => handler('SIGTERM'));
}
