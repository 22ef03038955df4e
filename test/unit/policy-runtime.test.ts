// PolicyRuntime: compiled snapshots swapped whole; a bad policy never replaces a good one. The
// reload logic runs against a fake PolicySource, then against FilePolicySource on a temp dir,
// awaiting the runtime's events (with a timeout) instead of sleeping.
import assert from 'node:assert/strict';
import { mkdtemp, rename, rm, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { CompiledPolicy, PolicyIssue } from '../../gateway/policy/compile.js';
import { type PolicyEvents, PolicyRejectedError, PolicyRuntime } from '../../gateway/policy/runtime.js';
import { FilePolicySource, type FileSourceOptions } from '../../gateway/policy/file-source.js';
import type { PolicySource, PolicyUpdate } from '../../gateway/policy/source.js';

/** A policy whose mlp split gives `candidate` this weight (and stable the rest of 100). */
function policyText(candidate: number, comment = ''): string {
  return `# ${comment}
version: 1
backends:
  pool-a: { endpoints: [http://127.0.0.1:8001] }
models:
  mlp:
    variants:
      stable: { backend: pool-a, model: mlp, version: "1" }
      candidate: { backend: pool-a, model: mlp, version: "2" }
    split: { stable: ${100 - candidate}, candidate: ${candidate} }
`;
}

const BAD = policyText(10).replace(
  'split: { stable: 90, candidate: 10 }',
  'split: { stable: 90, canary: 10 }',
);
const BAD_ERRORS: PolicyIssue[] = [{ path: 'models.mlp.split.canary', message: "unknown variant 'canary'" }];

/** The candidate's weight in a snapshot, read from its validated document. */
function candidateWeight(p: CompiledPolicy): number | undefined {
  return p.document.models.mlp?.split?.candidate;
}

/**
 * Waits a fixed time. Used only to check that an event does NOT happen (there is nothing to await);
 * every expected event is awaited through the Recorder or a callback instead.
 */
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

type Event =
  | { kind: 'applied'; policy: CompiledPolicy; origin: string }
  | { kind: 'rejected'; errors: readonly PolicyIssue[]; origin: string }
  | { kind: 'sourceError'; error: Error };

/** Records the runtime's events; `next` awaits the next one of a kind (past ones are consumed first). */
class Recorder implements PolicyEvents {
  readonly all: Event[] = [];
  private unread: Event[] = [];
  private waiters: { kind: Event['kind']; resolve: (e: Event) => void }[] = [];

  onApplied(policy: CompiledPolicy, origin: string): void {
    this.push({ kind: 'applied', policy, origin });
  }
  onRejected(errors: readonly PolicyIssue[], origin: string): void {
    this.push({ kind: 'rejected', errors, origin });
  }
  onSourceError(error: Error): void {
    this.push({ kind: 'sourceError', error });
  }

  private push(e: Event): void {
    this.all.push(e);
    const w = this.waiters.findIndex((x) => x.kind === e.kind);
    if (w >= 0) {
      const [waiter] = this.waiters.splice(w, 1);
      waiter!.resolve(e);
    } else {
      this.unread.push(e);
    }
  }

  next<K extends Event['kind']>(kind: K, timeoutMs = 5000): Promise<Extract<Event, { kind: K }>> {
    const i = this.unread.findIndex((e) => e.kind === kind);
    if (i >= 0) return Promise.resolve(this.unread.splice(i, 1)[0] as Extract<Event, { kind: K }>);
    return new Promise((resolve, reject) => {
      const waiter = {
        kind,
        resolve: (e: Event) => {
          clearTimeout(timer);
          resolve(e as Extract<Event, { kind: K }>);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(
          new Error(
            `no '${kind}' event within ${timeoutMs} ms; saw ${this.all.map((e) => e.kind).join(', ')}`,
          ),
        );
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }
}

/** A source whose updates the test pushes by hand. */
class FakeSource implements PolicySource {
  reads = 0;
  watching = 0;
  closed = false;
  private onUpdate: ((u: PolicyUpdate) => void) | undefined;
  private onError: ((e: Error) => void) | undefined;

  constructor(private text: string | Error) {}

  async read(): Promise<PolicyUpdate> {
    this.reads++;
    if (this.text instanceof Error) throw this.text;
    return { text: this.text, origin: 'fake:1' };
  }
  watch(onUpdate: (u: PolicyUpdate) => void, onError: (e: Error) => void): void {
    this.watching++;
    this.onUpdate = onUpdate;
    this.onError = onError;
  }
  async close(): Promise<void> {
    this.closed = true;
  }
  push(text: string, origin = 'fake:2'): void {
    assert.ok(this.onUpdate, 'the runtime watches the source');
    this.onUpdate({ text, origin });
  }
  fail(e: Error): void {
    this.onError?.(e);
  }
}

describe('PolicyRuntime with a fake source', () => {
  test('start: reads once, applies, then watches', async () => {
    const source = new FakeSource(policyText(10));
    const events = new Recorder();
    const runtime = await PolicyRuntime.start(source, events);
    assert.equal(source.reads, 1);
    assert.equal(source.watching, 1);
    assert.equal(candidateWeight(runtime.current), 10);
    assert.equal(events.all.length, 1);
    const applied = await events.next('applied');
    assert.equal(applied.origin, 'fake:1');
    assert.equal(applied.policy, runtime.current);
  });

  test('start: a bad policy is an error with every issue, and nothing is watched', async () => {
    const source = new FakeSource(BAD);
    const events = new Recorder();
    await assert.rejects(PolicyRuntime.start(source, events), (e: unknown) => {
      assert.ok(e instanceof PolicyRejectedError);
      assert.equal(e.origin, 'fake:1');
      assert.deepEqual(e.errors, BAD_ERRORS);
      assert.equal(e.message, "fake:1: models.mlp.split.canary: unknown variant 'canary'");
      return true;
    });
    assert.equal(source.watching, 0);
    assert.deepEqual(events.all, []);
  });

  test('start: a source that cannot be read is an error', async () => {
    const source = new FakeSource(new Error('no such policy'));
    await assert.rejects(PolicyRuntime.start(source), /no such policy/);
    assert.equal(source.watching, 0);
  });

  test('a good change is applied, swapping the whole snapshot', async () => {
    const source = new FakeSource(policyText(10));
    const events = new Recorder();
    const runtime = await PolicyRuntime.start(source, events);
    const before = runtime.current;
    source.push(policyText(20));
    assert.equal((await events.next('applied')).origin, 'fake:1', 'the start');
    const afterApply = await events.next('applied');
    assert.equal(afterApply.origin, 'fake:2');
    assert.equal(runtime.current, afterApply.policy);
    assert.equal(candidateWeight(runtime.current), 20);
    // A request that took the old snapshot keeps it, unchanged.
    assert.equal(candidateWeight(before), 10);
    assert.notEqual(before.sha256, runtime.current.sha256);
    assert.ok(Object.isFrozen(before) && Object.isFrozen(before.models.get('mlp')));
  });

  test('a bad change is rejected with its errors; the last good snapshot keeps serving', async () => {
    const source = new FakeSource(policyText(10));
    const events = new Recorder();
    const runtime = await PolicyRuntime.start(source, events);
    const good = runtime.current;
    source.push(BAD, 'fake:bad');
    const rejected = await events.next('rejected');
    assert.deepEqual(rejected.errors, BAD_ERRORS);
    assert.equal(rejected.origin, 'fake:bad');
    assert.equal(runtime.current, good);
    // Then a good one again.
    source.push(policyText(50), 'fake:3');
    await events.next('applied'); // the start
    const applied = await events.next('applied');
    assert.equal(applied.origin, 'fake:3');
    assert.equal(candidateWeight(runtime.current), 50);
  });

  test('offer: applied, unchanged (same text, comments only), rejected', async () => {
    const runtime = await PolicyRuntime.start(new FakeSource(policyText(10)));
    const first = runtime.current;
    assert.equal(runtime.offer({ text: policyText(10), origin: 'x' }), 'unchanged');
    assert.equal(runtime.offer({ text: policyText(10, 'a new comment'), origin: 'x' }), 'unchanged');
    assert.equal(runtime.current, first, 'an unchanged policy keeps the same snapshot');
    assert.equal(runtime.offer({ text: BAD, origin: 'x' }), 'rejected');
    assert.equal(runtime.offer({ text: '', origin: 'x' }), 'rejected');
    assert.equal(runtime.offer({ text: '{', origin: 'x' }), 'rejected');
    assert.equal(runtime.current, first);
    assert.equal(runtime.offer({ text: policyText(30), origin: 'x' }), 'applied');
    assert.equal(
      runtime.offer({ text: policyText(10), origin: 'x' }),
      'applied',
      'back to the first is a change',
    );
    assert.equal(candidateWeight(runtime.current), 10);
  });

  test('offer without listeners works', async () => {
    const runtime = await PolicyRuntime.start(new FakeSource(policyText(10)));
    assert.equal(runtime.offer({ text: BAD, origin: 'x' }), 'rejected');
    assert.equal(runtime.offer({ text: policyText(40), origin: 'x' }), 'applied');
  });

  test('source errors are reported and change nothing', async () => {
    const source = new FakeSource(policyText(10));
    const events = new Recorder();
    const runtime = await PolicyRuntime.start(source, events);
    const good = runtime.current;
    source.fail(new Error('EACCES'));
    const e = await events.next('sourceError');
    assert.equal(e.error.message, 'EACCES');
    assert.equal(runtime.current, good);
  });
});

describe('FilePolicySource on a temp dir', () => {
  let dir: string;
  let n = 0;
  const fresh = async (text: string): Promise<string> => {
    const file = path.join(dir, `policy-${++n}.yaml`);
    await writeFile(file, text);
    return file;
  };

  /**
   * A runtime on a fresh policy file (weight 10): `body` runs once that policy is applied, and the
   * source is closed after it, whatever happens.
   */
  const withRuntime = async (
    options: FileSourceOptions,
    body: (ctx: { file: string; events: Recorder; runtime: PolicyRuntime }) => Promise<void>,
  ): Promise<void> => {
    const file = await fresh(policyText(10));
    const source = new FilePolicySource(file, options);
    const events = new Recorder();
    const runtime = await PolicyRuntime.start(source, events);
    try {
      await events.next('applied');
      await body({ file, events, runtime });
    } finally {
      await source.close();
    }
  };

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'infergate-policy-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('read: the text and the absolute path', async () => {
    const file = await fresh(policyText(10));
    const source = new FilePolicySource(path.relative(process.cwd(), file));
    assert.equal(source.path, file);
    assert.deepEqual(await source.read(), { text: policyText(10), origin: file });
  });

  test('read: a missing file is an error (ENOENT)', async () => {
    const source = new FilePolicySource(path.join(dir, 'missing.yaml'));
    await assert.rejects(source.read(), (e: NodeJS.ErrnoException) => e.code === 'ENOENT');
  });

  test('an edit in place is applied', async () => {
    await withRuntime({ debounceMs: 10 }, async ({ file, events, runtime }) => {
      await writeFile(file, policyText(20));
      const applied = await events.next('applied');
      assert.equal(applied.origin, file);
      assert.equal(candidateWeight(runtime.current), 20);
    });
  });

  test('a bad edit is rejected and the last good policy keeps serving; the fix is applied', async () => {
    await withRuntime({ debounceMs: 10 }, async ({ file, events, runtime }) => {
      const good = runtime.current;
      await writeFile(file, BAD);
      const rejected = await events.next('rejected');
      assert.deepEqual(rejected.errors, BAD_ERRORS);
      assert.equal(rejected.origin, file);
      assert.equal(runtime.current, good);
      await writeFile(file, policyText(25));
      await events.next('applied');
      assert.equal(candidateWeight(runtime.current), 25);
    });
  });

  test("an editor's atomic replace (write a temp file, rename it over) is applied", async () => {
    await withRuntime({ debounceMs: 10 }, async ({ file, events, runtime }) => {
      const tmp = `${file}.tmp`;
      await writeFile(tmp, policyText(35));
      await rename(tmp, file);
      await events.next('applied');
      assert.equal(candidateWeight(runtime.current), 35);
      assert.deepEqual(
        events.all.filter((e) => e.kind !== 'applied'),
        [],
        'no rejection or error on the way',
      );
    });
  });

  test('a file briefly missing is not an error; its return is applied', async () => {
    await withRuntime({ debounceMs: 10, pollMs: 20 }, async ({ file, events, runtime }) => {
      await unlink(file);
      // No event can say that nothing was reported: give watcher, debounce and poll (10 ms,
      // 20 ms) ten times their period to report the missing file.
      await pause(200);
      assert.deepEqual(
        events.all.map((e) => e.kind),
        ['applied'],
      );
      await writeFile(file, policyText(45));
      await events.next('applied');
      assert.equal(candidateWeight(runtime.current), 45);
      assert.deepEqual(
        events.all.filter((e) => e.kind === 'sourceError'),
        [],
      );
    });
  });

  test('writes within the debounce window are read once, as the last one left them', async () => {
    await withRuntime({ debounceMs: 300, pollMs: 60_000 }, async ({ file, events, runtime }) => {
      const text = policyText(60);
      // An editor that writes in two steps: the half-written file is never compiled.
      await writeFile(file, text.slice(0, text.length / 2));
      await writeFile(file, text);
      await events.next('applied');
      assert.equal(candidateWeight(runtime.current), 60);
      assert.deepEqual(
        events.all.map((e) => e.kind),
        ['applied', 'applied'],
      );
    });
  });

  test('the watch follows its own file only, and stops on close', async () => {
    const file = await fresh(policyText(10));
    const source = new FilePolicySource(file, { debounceMs: 5, pollMs: 20 });
    await source.read(); // as PolicyRuntime.start does: the poll compares with what was read
    const updates: PolicyUpdate[] = [];
    let signal: (() => void) | undefined;
    source.watch(
      (u) => {
        updates.push(u);
        signal?.();
      },
      (e) => assert.fail(e),
    );
    try {
      const seen = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no update within 5 s')), 5000);
        signal = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      await writeFile(path.join(dir, 'sibling.yaml'), 'not a policy');
      await pause(200); // an event that must not come (see above)
      assert.equal(updates.length, 0, 'a sibling file is not this policy');
      await writeFile(file, policyText(70));
      await seen;
      assert.ok(updates.length >= 1);
      assert.ok(
        updates.every((u) => u.text === policyText(70) && u.origin === file),
        'every update carries the new text of this file',
      );
    } finally {
      await source.close();
    }
    const count = updates.length;
    await writeFile(file, policyText(80));
    await pause(200); // an event that must not come

    assert.equal(updates.length, count, 'no update after close');
  });
});
