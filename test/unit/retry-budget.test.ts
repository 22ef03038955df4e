// The retry budget: over the last 10 s, retries may be at most budgetPercent % of the requests
// plus a floor of 10. Time comes from a fake clock, so window edges are exact.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MIN_RETRIES_PER_WINDOW, RetryBudget } from '../../gateway/upstream/retry-budget.js';
import { FakeClock } from '../helpers/fake-clock.js';

/** Records `n` requests. */
function requests(budget: RetryBudget, n: number): void {
  for (let i = 0; i < n; i++) budget.recordRequest();
}

/** Asks for retries until one is refused (at most `cap`); returns how many were allowed. */
function drain(budget: RetryBudget, percent: number, cap = 10_000): number {
  let allowed = 0;
  while (allowed < cap && budget.tryRetry(percent)) allowed++;
  return allowed;
}

describe('RetryBudget: how many retries a window allows', () => {
  test('the floor is 10', () => {
    assert.equal(MIN_RETRIES_PER_WINDOW, 10);
  });

  const table: { requests: number; percent: number; allowed: number }[] = [
    { requests: 0, percent: 20, allowed: 10 },
    { requests: 0, percent: 100, allowed: 10 },
    { requests: 100, percent: 0, allowed: 10 },
    { requests: 100, percent: 20, allowed: 30 },
    { requests: 1000, percent: 20, allowed: 210 },
    { requests: 1000, percent: 5, allowed: 60 },
    { requests: 50, percent: 100, allowed: 60 },
    { requests: 5, percent: 20, allowed: 11 },
    { requests: 10_000, percent: 1, allowed: 110 },
  ];
  for (const c of table) {
    test(`${c.requests} requests at ${c.percent}%: ${c.allowed} retries, then refused`, () => {
      const clock = new FakeClock(1_000_000);
      const budget = new RetryBudget(clock);
      requests(budget, c.requests);
      assert.equal(drain(budget, c.percent), c.allowed);
      assert.equal(budget.tryRetry(c.percent), false, 'still refused');
      assert.equal(
        budget.tryRetry(c.percent),
        false,
        'refusals are not counted as retries, and do not reset',
      );
    });
  }

  test('a refused retry is not counted: new requests make room again', () => {
    const budget = new RetryBudget(new FakeClock());
    requests(budget, 100);
    assert.equal(drain(budget, 10), 20);
    for (let i = 0; i < 5; i++) assert.equal(budget.tryRetry(10), false);
    requests(budget, 10); // 110 requests: 10 + 11 = 21
    assert.equal(drain(budget, 10), 1);
  });

  test('the percentage is read at each call (a reload may change it)', () => {
    const budget = new RetryBudget(new FakeClock());
    requests(budget, 100);
    assert.equal(drain(budget, 10), 20);
    assert.equal(drain(budget, 50), 40, 'up to 10 + 50 in all');
    assert.equal(drain(budget, 10), 0);
  });

  test('requests are counted across all ten seconds of the window', () => {
    const clock = new FakeClock();
    const budget = new RetryBudget(clock);
    for (let s = 0; s < 10; s++) {
      requests(budget, 10);
      clock.advance(s < 9 ? 1000 : 999);
    }
    // t = 9.999 s: all 100 requests of seconds 0..9 count.
    assert.equal(drain(budget, 100), 10 + 100);
  });

  test('at t = 10 s the requests of second 0 have left the window', () => {
    const clock = new FakeClock();
    const budget = new RetryBudget(clock);
    for (let s = 0; s < 10; s++) {
      requests(budget, 10);
      clock.advance(1000);
    }
    assert.equal(drain(budget, 100), 10 + 90);
  });

  test('with a fractional allowance the total stays within it (1 request at 20%: 10.2 allows 10)', () => {
    const budget = new RetryBudget(new FakeClock());
    requests(budget, 1);
    assert.equal(drain(budget, 20), 10);
  });
});

describe('RetryBudget: the 10 s window slides', () => {
  test('retries spent at t=0 count until t=10 s, then the floor is back', () => {
    const clock = new FakeClock();
    const budget = new RetryBudget(clock);
    assert.equal(drain(budget, 20), 10);
    clock.advance(5000);
    assert.equal(budget.tryRetry(20), false, 'at 5 s');
    clock.advance(4999);
    assert.equal(budget.tryRetry(20), false, 'at 9.999 s');
    clock.advance(1);
    assert.equal(drain(budget, 20), 10, 'at 10 s');
  });

  test('the window is whole seconds: spent at 0.999 s, back at 10 s (not 10.999 s)', () => {
    const clock = new FakeClock(999);
    const budget = new RetryBudget(clock);
    assert.equal(drain(budget, 0), 10);
    clock.advance(9000); // 9.999 s: second 9, the window still holds second 0
    assert.equal(budget.tryRetry(0), false);
    clock.advance(1); // 10 s
    assert.equal(budget.tryRetry(0), true);
  });

  test('requests leave the window too, and retries recover as old ones leave', () => {
    const clock = new FakeClock();
    const budget = new RetryBudget(clock);
    requests(budget, 100); // second 0
    assert.equal(drain(budget, 20), 30);
    clock.advance(5000);
    requests(budget, 50); // second 5: 150 requests in the window, allowance 40
    assert.equal(drain(budget, 20), 10);
    clock.advance(5000); // second 10: second 0 is gone (its 100 requests and 30 retries)
    // 50 requests (10 + 10 allowed), 10 retries spent at second 5.
    assert.equal(drain(budget, 20), 10);
    clock.advance(5000); // second 15: second 5 is gone; retries of second 10 remain
    assert.equal(budget.tryRetry(20), false, '10 retries of second 10 fill the floor');
    clock.advance(5000); // second 20: all gone
    assert.equal(drain(budget, 20), 10);
  });

  test('a steady overload is held at the budget, second after second', () => {
    const clock = new FakeClock();
    const budget = new RetryBudget(clock);
    let retried = 0;
    let sent = 0;
    // 100 requests a second, every one failing and asking for a retry, for a minute.
    for (let ms = 0; ms < 60_000; ms += 10) {
      budget.recordRequest();
      sent++;
      if (budget.tryRetry(20)) retried++;
      clock.advance(10);
    }
    // At most 10 + 20% of the requests of any 10 s window: over 6 windows, at most 6 * (10 + 200).
    assert.ok(retried <= 6 * 210, `${retried} retries`);
    assert.ok(retried >= 0.2 * sent, `${retried} retries for ${sent} requests: the budget is used`);
  });

  test('a long idle gap (an hour and a second) starts from an empty window', () => {
    const clock = new FakeClock(1000);
    const budget = new RetryBudget(clock);
    requests(budget, 1000);
    assert.equal(drain(budget, 10), 110);
    clock.advance(3_601_000); // another ring slot than the one of the requests
    assert.equal(drain(budget, 10), 10, 'the 1000 requests no longer count');
  });

  test('11 s later, in another ring slot, the old slot no longer counts', () => {
    const clock = new FakeClock(1500); // second 1
    const budget = new RetryBudget(clock);
    requests(budget, 500);
    assert.equal(drain(budget, 10), 60);
    clock.advance(11_000); // second 12: slot 1 holds second 1, out of the window
    assert.equal(drain(budget, 10), 10);
  });

  test('a gap of 13 s reuses the ring slot of second 3 without keeping its counts', () => {
    const clock = new FakeClock(3000);
    const budget = new RetryBudget(clock);
    requests(budget, 500);
    assert.equal(drain(budget, 10), 60);
    clock.advance(10_000); // second 13, the same slot as second 3
    assert.equal(drain(budget, 10), 10);
  });
});
