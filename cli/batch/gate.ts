/**
 * The waits of a batch run, without polling: `until` resumes when something changed (`notify`:
 * an answer came, a chunk was written) and the condition holds; `sleep` (backoff, Retry-After)
 * is cut short by `wakeAll` when the run stops.
 */
export class Gate {
  private readonly waiters: (() => void)[] = [];
  private readonly sleepers = new Set<() => void>();

  notify(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  async until(ready: () => boolean): Promise<void> {
    while (!ready()) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const wake = () => {
        this.sleepers.delete(wake);
        clearTimeout(t);
        resolve();
      };
      const t = setTimeout(wake, ms);
      this.sleepers.add(wake);
    });
  }

  /** Ends every sleep and wakes every waiter (a stop). */
  wakeAll(): void {
    for (const w of [...this.sleepers]) w();
    this.notify();
  }
}
