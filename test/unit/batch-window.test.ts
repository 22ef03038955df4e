// The adaptive window of `infergate batch`: additive increase, multiplicative decrease once per
// round trip on 429/503, a Retry-After hold once at the floor; Retry-After and backoff parsing.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AdaptiveWindow, backoffMs, retryAfterMs } from '../../cli/batch/window.js';

describe('batch adaptive window', () => {
  test('starts at the ceiling and grows back by one slot per window of successes', () => {
    const w = new AdaptiveWindow(8);
    assert.equal(w.limit, 8);
    w.onBackpressure(w.epoch, 0, undefined);
    assert.equal(w.limit, 4);
    for (let i = 0; i < 4; i++) w.onSuccess();
    assert.equal(w.limit, 4, 'just short of 5 after 4 successes at 4');
    w.onSuccess();
    assert.equal(w.limit, 5);
    for (let i = 0; i < 100; i++) w.onSuccess();
    assert.equal(w.limit, 8, 'never above the ceiling');
  });

  test('answers to requests sent before a cut do not cut it again', () => {
    const w = new AdaptiveWindow(16);
    const sent = w.epoch;
    assert.equal(w.onBackpressure(sent, 0, undefined), true);
    assert.equal(w.onBackpressure(sent, 0, undefined), false);
    assert.equal(w.onBackpressure(sent, 0, undefined), false);
    assert.equal(w.limit, 8);
    assert.equal(w.onBackpressure(w.epoch, 0, undefined), true);
    assert.equal(w.limit, 4);
  });

  test('never below the floor; Retry-After holds everything only once at the floor', () => {
    const w = new AdaptiveWindow(2);
    w.onBackpressure(w.epoch, 100, 1000);
    assert.equal(w.limit, 1);
    assert.equal(w.pausedUntil, 0, 'above the floor the line alone waits');
    w.onBackpressure(w.epoch, 100, 1000);
    assert.equal(w.limit, 1);
    assert.equal(w.pausedUntil, 1100);
    w.onBackpressure(w.epoch - 1, 200, 500);
    assert.equal(w.pausedUntil, 1100, 'a shorter hold does not shorten it');
  });

  test('Retry-After: seconds or an HTTP date; anything else is none', () => {
    assert.equal(retryAfterMs('2', 0), 2000);
    assert.equal(retryAfterMs(['1', '5'], 0), 1000);
    assert.equal(retryAfterMs(undefined, 0), undefined);
    assert.equal(retryAfterMs('soon', 0), undefined);
    assert.equal(retryAfterMs('99999', 0), 3_600_000, 'capped at an hour');
    const now = Date.parse('2026-01-01T00:00:00Z');
    assert.equal(retryAfterMs('Thu, 01 Jan 2026 00:00:03 GMT', now), 3000);
    assert.equal(retryAfterMs('Wed, 31 Dec 2025 00:00:00 GMT', now), 0);
  });

  test('backoff: full jitter below a doubling cap', () => {
    assert.equal(
      backoffMs(1, () => 0.999, 50, 5000),
      49,
    );
    assert.equal(
      backoffMs(3, () => 0.5, 50, 5000),
      100,
    );
    assert.equal(
      backoffMs(20, () => 0.5, 50, 5000),
      2500,
    );
    assert.equal(
      backoffMs(4, () => 0),
      0,
    );
  });
});
