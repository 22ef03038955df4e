// The sequencer of `infergate batch`: answers written in input order whatever order they finish
// in (or at once with --unordered), a bounded number of lines between the oldest unfinished and
// the newest, and the watermark plus the lines done beyond it that a restart resumes from.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Sequencer } from '../../cli/batch/reorder.js';

function make(ordered: boolean, capacity = 4, carried: number[] = []) {
  const written: number[] = [];
  const seq = new Sequencer<number>(
    capacity,
    ordered,
    { line: 1, offset: 0 },
    (v) => written.push(v),
    carried,
  );
  return { seq, written };
}

describe('batch sequencer (reorder buffer)', () => {
  test('in order: an answer waits for every earlier one; the watermark follows', () => {
    const { seq, written } = make(true);
    const s1 = seq.add(1, 10);
    const s2 = seq.add(2, 20);
    const s3 = seq.add(4, 40); // line 3 was blank or another shard's
    seq.complete(s3, 4);
    seq.complete(s2, 2);
    assert.deepEqual(written, []);
    assert.deepEqual(seq.watermark, { line: 1, offset: 0 });
    assert.deepEqual(seq.doneAbove(), [], 'nothing beyond the watermark is in the output');
    seq.complete(s1, 1);
    assert.deepEqual(written, [1, 2, 4]);
    assert.deepEqual(seq.watermark, { line: 5, offset: 40 });
    assert.equal(seq.pending, 0);
  });

  test('bounded: no room once capacity lines are pending behind the oldest', () => {
    const { seq } = make(true, 3);
    const first = seq.add(1, 1);
    seq.complete(seq.add(2, 2), 2);
    seq.add(3, 3);
    assert.equal(seq.hasRoom, false);
    assert.throws(() => seq.add(4, 4), /full/);
    seq.complete(first, 1);
    assert.equal(seq.hasRoom, true);
    assert.equal(seq.pending, 1);
  });

  test('unordered: written at once; done lines beyond the watermark are listed for a restart', () => {
    const { seq, written } = make(false);
    const s1 = seq.add(1, 10);
    const s2 = seq.add(2, 20);
    const s3 = seq.add(3, 30);
    seq.complete(s3, 3);
    seq.complete(s2, 2);
    assert.deepEqual(written, [3, 2]);
    assert.deepEqual(seq.doneAbove(), [2, 3]);
    assert.deepEqual(seq.watermark, { line: 1, offset: 0 });
    seq.complete(s1, 1);
    assert.deepEqual(seq.doneAbove(), []);
    assert.deepEqual(seq.watermark, { line: 4, offset: 30 });
  });

  test('a resumed unordered run skips the lines carried over and keeps listing them until passed', () => {
    const { seq } = make(false, 4, [3, 5]);
    assert.equal(seq.alreadyDone(3), true);
    assert.equal(seq.alreadyDone(4), false);
    const s1 = seq.add(1, 10);
    const s2 = seq.add(2, 20);
    const s4 = seq.add(4, 40);
    seq.complete(s2, 2);
    assert.deepEqual(seq.doneAbove(), [2, 3, 5]);
    seq.complete(s1, 1);
    assert.deepEqual(seq.watermark, { line: 3, offset: 20 });
    assert.deepEqual(seq.doneAbove(), [3, 5]);
    seq.complete(s4, 4);
    assert.deepEqual(seq.watermark, { line: 5, offset: 40 });
    assert.deepEqual(seq.doneAbove(), [5]);
  });

  test('a line completed twice is a bug, not a second output line', () => {
    const { seq } = make(false);
    const s = seq.add(1, 1);
    const t = seq.add(2, 2);
    seq.complete(t, 2);
    assert.throws(() => seq.complete(t, 2), /twice/);
    seq.complete(s, 1);
    assert.throws(() => seq.complete(s, 1), /not pending/);
  });
});
