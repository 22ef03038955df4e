// Admission stages: the runner walks a plain array in order, answers synchronously when no stage
// waits, releases what was taken (last first) on a refusal and at the end, and records which stage
// refused; the concurrency stages shed with 503 and Retry-After as the limiter decides.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ApiError } from '../../common/errors.js';
import { concurrencyStage } from '../../gateway/admission/concurrency.js';
import { ConcurrencyLimiter } from '../../gateway/admission/limiter.js';
import {
  type AdmissionFacts,
  type AdmissionStage,
  admit,
  release,
  type Verdict,
} from '../../gateway/admission/stage.js';
import { GW_ERRORS } from '../../gateway/errors.js';
import { FakeClock, flushMicrotasks } from '../helpers/fake-clock.js';

function facts(modelName = 'm'): AdmissionFacts {
  return { id: 'r1', modelName, headers: {}, keyId: undefined, admitted: 0, refusedBy: undefined };
}

/** A stage that logs its calls into `log` and answers with `verdict` (a promise when `later`). */
function stage(
  name: string,
  log: string[],
  verdict: () => Verdict | Promise<Verdict> = () => undefined,
): AdmissionStage {
  return {
    name,
    admit() {
      log.push(`admit ${name}`);
      return verdict();
    },
    release() {
      log.push(`release ${name}`);
    },
  };
}

const refusal = (message: string) => ({ error: new ApiError(GW_ERRORS.GW_ERR_OVERLOADED, message) });

describe('the admission runner', () => {
  test('stages that all admit at once: a synchronous undefined, then release in reverse order', () => {
    const log: string[] = [];
    const stages = [stage('a', log), stage('b', log), stage('c', log)];
    const f = facts();
    assert.equal(admit(stages, f), undefined);
    assert.equal(f.admitted, 3);
    release(stages, f);
    release(stages, f); // twice is harmless
    assert.deepEqual(log, ['admit a', 'admit b', 'admit c', 'release c', 'release b', 'release a']);
    assert.equal(f.admitted, 0);
  });

  test('a refusal stops the walk, releases the stages passed, and names the stage', () => {
    const log: string[] = [];
    const no = refusal('no');
    const stages = [stage('a', log), stage('b', log, () => no), stage('c', log)];
    const f = facts();
    assert.equal(admit(stages, f), no);
    assert.equal(f.refusedBy, 'b');
    assert.equal(f.admitted, 0);
    assert.deepEqual(log, ['admit a', 'admit b', 'release a']);
  });

  test('a stage that waits makes the runner a promise; the stages after it run once it admits', async () => {
    const log: string[] = [];
    let open: (v: Verdict) => void = () => {};
    const gate = new Promise<Verdict>((r) => {
      open = r;
    });
    const stages = [stage('a', log), stage('wait', log, () => gate), stage('c', log)];
    const f = facts();
    const pending = admit(stages, f);
    assert.ok(pending instanceof Promise);
    await flushMicrotasks();
    assert.deepEqual(log, ['admit a', 'admit wait']);
    open(undefined);
    assert.equal(await pending, undefined);
    assert.equal(f.admitted, 3);
    assert.deepEqual(log, ['admit a', 'admit wait', 'admit c']);
  });

  test('a stage that waits and then refuses releases only the stages before it', async () => {
    const log: string[] = [];
    const no = refusal('later no');
    const stages = [stage('a', log), stage('wait', log, () => Promise.resolve(no)), stage('c', log)];
    const f = facts();
    assert.equal(await admit(stages, f), no);
    assert.equal(f.refusedBy, 'wait');
    assert.deepEqual(log, ['admit a', 'admit wait', 'release a']);
  });
});

describe('concurrency stages', () => {
  test('admit within the limit, shed beyond it with 503 and Retry-After, and report the shed', async () => {
    const clock = new FakeClock();
    const limiter = new ConcurrencyLimiter({ maxInFlight: 1, maxQueue: 1, queueTimeoutMs: 100 }, clock);
    const shed: string[] = [];
    const s = concurrencyStage('model', limiter, (model, scope, reason) =>
      shed.push(`${model} ${scope} ${reason}`),
    );
    const first = facts('mlp');
    assert.equal(admit([s], first), undefined, 'a free slot admits synchronously');
    const queued = admit([s], facts('mlp'));
    assert.ok(queued instanceof Promise, 'a full limiter makes the request wait');
    const full = await admit([s], facts('mlp'));
    assert.equal(full?.error.statusCode, 503);
    assert.equal(full?.error.code, 'GW_ERR_OVERLOADED');
    assert.equal(full?.error.retryAfterSeconds, 1);
    assert.match(full?.error.message ?? '', /model 'mlp' is at its concurrency limit/);
    release([s], first);
    assert.equal(await queued, undefined, 'the release hands the slot to the waiter');
    assert.deepEqual(shed, ['mlp model queue_full']);
    assert.equal(limiter.active, 1);
  });

  test('a wait that runs out is shed as queue_timeout', async () => {
    const clock = new FakeClock();
    const limiter = new ConcurrencyLimiter({ maxInFlight: 1, maxQueue: 4, queueTimeoutMs: 50 }, clock);
    const shed: string[] = [];
    const s = concurrencyStage('gateway', limiter, (_m, scope, reason) => shed.push(`${scope} ${reason}`));
    assert.equal(admit([s], facts()), undefined);
    const waiting = admit([s], facts());
    clock.advance(50);
    const v = await waiting;
    assert.match(v?.error.message ?? '', /the gateway is at its concurrency limit/);
    assert.deepEqual(shed, ['gateway queue_timeout']);
  });
});
