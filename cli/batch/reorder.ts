/**
 * The sequencer of `infergate batch`: the bounded reorder buffer between answers (which finish in
 * any order) and the output file, and the watermark the checkpoint records.
 *
 * Every line sent gets the next sequence number. In order (the default), an answer waits in the
 * buffer until every line before it is written; with `--unordered` it is written at once. Either
 * way at most `capacity` lines are between the oldest unfinished one and the newest read, so
 * memory stays bounded however the answers come. The watermark is the first line not known to be
 * done with everything before it: on restart, reading resumes there, skipping the lines (only
 * with --unordered) already written beyond it.
 */
export interface Watermark {
  /** 1-based number of the first line not done with all before it. */
  readonly line: number;
  /** Byte offset in the input where that line (or a line skipped before it) starts. */
  readonly offset: number;
}

interface Slot<T> {
  line: number;
  end: number;
  done: boolean;
  value: T | undefined;
}

export class Sequencer<T> {
  private readonly slots: (Slot<T> | undefined)[];
  private base = 0;
  private next = 0;
  private mark: Watermark;
  /** Lines past the watermark already in the output from an earlier run (--unordered resume). */
  private readonly carried: Set<number>;

  constructor(
    readonly capacity: number,
    readonly ordered: boolean,
    start: Watermark,
    private readonly emit: (value: T, line: number) => void,
    carried: Iterable<number> = [],
  ) {
    if (!(capacity >= 1)) throw new Error('the reorder buffer needs room for at least one line');
    this.slots = new Array(capacity);
    this.mark = start;
    this.carried = new Set(carried);
  }

  /** Room for one more line to be sent. */
  get hasRoom(): boolean {
    return this.next - this.base < this.capacity;
  }

  /** Lines sent and not yet released (in flight, or waiting for an earlier one). */
  get pending(): number {
    return this.next - this.base;
  }

  get watermark(): Watermark {
    return this.mark;
  }

  /** Whether an earlier run already wrote this line (skip it). */
  alreadyDone(line: number): boolean {
    return this.carried.has(line);
  }

  /** A line about to be sent: its number and the offset just past it. Returns its sequence number. */
  add(line: number, end: number): number {
    if (!this.hasRoom) throw new Error('the reorder buffer is full');
    const seq = this.next;
    this.slots[seq % this.capacity] = { line, end, done: false, value: undefined };
    this.next += 1;
    return seq;
  }

  /** The answer (or error) of line `seq`. */
  complete(seq: number, value: T): void {
    if (seq < this.base || seq >= this.next) throw new Error(`sequence ${seq} is not pending`);
    const slot = this.slots[seq % this.capacity] as Slot<T>;
    if (slot.done) throw new Error(`line ${slot.line} completed twice`);
    slot.done = true;
    if (this.ordered) slot.value = value;
    else this.emit(value, slot.line);
    this.release();
  }

  /** Lines written beyond the watermark (--unordered): what a restart must skip. */
  doneAbove(): number[] {
    const out: number[] = [];
    for (const line of this.carried) if (line >= this.mark.line) out.push(line);
    if (!this.ordered) {
      for (let s = this.base; s < this.next; s++) {
        const slot = this.slots[s % this.capacity] as Slot<T>;
        if (slot.done) out.push(slot.line);
      }
    }
    return out.sort((a, b) => a - b);
  }

  private release(): void {
    while (this.base < this.next) {
      const i = this.base % this.capacity;
      const slot = this.slots[i] as Slot<T>;
      if (!slot.done) break;
      if (this.ordered) this.emit(slot.value as T, slot.line);
      this.slots[i] = undefined;
      this.base += 1;
      this.mark = { line: slot.line + 1, offset: slot.end };
    }
    if (this.carried.size > 0) for (const l of this.carried) if (l < this.mark.line) this.carried.delete(l);
  }
}
