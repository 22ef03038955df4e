// Request loggers: fastify's req.log for the backend is a LazyChildLogger, which makes pino's child
// logger only when something is logged. The lines must be the ones an eager child writes.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import type { FastifyBaseLogger } from 'fastify';
import { LazyChildLogger } from '../../backend/lazy-logger.js';
import { createLogger } from '../../common/logging.js';

function capture(level = 'info'): { logger: FastifyBaseLogger; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString('utf8'));
      done();
    },
  });
  const logger = createLogger({ name: 'lazy-test', level, destination }) as unknown as FastifyBaseLogger;
  return {
    logger,
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => {
          const { time: _time, ...rest } = JSON.parse(l) as Record<string, unknown>;
          return rest;
        }),
  };
}

describe('LazyChildLogger', () => {
  test('writes the same lines as an eager pino child, bindings and redaction included', () => {
    const eager = capture();
    const lazy = capture();
    const bindings = { reqId: 'req-1' };
    const children = [eager.logger.child(bindings, {}), new LazyChildLogger(lazy.logger, bindings, {})];
    for (const log of children) {
      log.error({ err: new Error('boom'), reqId: 'req-1' }, 'unexpected error');
      log.warn('plain %s', 'message');
      log.info({ data: [1, 2, 3] }, 'tensor data is redacted');
      log.debug('below the level: not written');
      log.child({ extra: true }).info('a grandchild');
    }
    const strip = (r: Record<string, unknown>) => {
      // Stack traces differ by line number between the two calls.
      const err = r.err as { stack?: string } | undefined;
      if (err?.stack !== undefined) err.stack = '<stack>';
      return r;
    };
    assert.deepEqual(lazy.lines().map(strip), eager.lines().map(strip));
    assert.equal(lazy.lines().length, 4);
    assert.equal(lazy.lines()[2]!.data, '[redacted]');
  });

  test('level reads through to the parent until set, and a set level is the child own', () => {
    const { logger } = capture('warn');
    const child = new LazyChildLogger(logger, { reqId: 'r' }, {});
    assert.equal(child.level, 'warn');
    child.level = 'debug';
    assert.equal(child.level, 'debug');
    assert.equal(logger.level, 'warn', 'the parent keeps its level');
  });
});
