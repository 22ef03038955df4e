/**
 * The policy file source: the embedded default and `infergate gateway --policy FILE`.
 */
import { type FSWatcher, watch } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import type { PolicySource, PolicyUpdate } from './source.js';

export interface FileSourceOptions {
  /** Safety net behind the file watcher (some file systems send no events), in ms. */
  pollMs?: number;
  /** Editors write a file in several steps; changes within this window are read once. */
  debounceMs?: number;
}

/**
 * A policy file. The directory is watched (editors often replace the file by a rename, which a
 * watch on the file itself would miss), with a stat poll behind it.
 */
export class FilePolicySource implements PolicySource {
  readonly path: string;
  private watcher: FSWatcher | undefined;
  private poll: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private lastStamp = '';
  private closed = false;

  constructor(
    path: string,
    private readonly opts: FileSourceOptions = {},
  ) {
    this.path = resolve(path);
  }

  async read(): Promise<PolicyUpdate> {
    // stat, read, stat: a file replaced in between is read again, so the stamp kept always
    // belongs to the text returned.
    for (let tries = 0; ; tries++) {
      const before = await stat(this.path);
      const text = await readFile(this.path, 'utf8');
      const after = await stat(this.path);
      const stamp = `${after.mtimeMs}:${after.size}:${after.ino}`;
      if (stamp === `${before.mtimeMs}:${before.size}:${before.ino}` || tries >= 5) {
        this.lastStamp = stamp;
        return { text, origin: this.path };
      }
    }
  }

  watch(onUpdate: (u: PolicyUpdate) => void, onError: (e: Error) => void): void {
    // Rereads run one after another, so an older text is never applied after a newer one.
    let chain: Promise<void> = Promise.resolve();
    const reread = () => {
      chain = chain.then(async () => {
        if (this.closed) return;
        let update: PolicyUpdate;
        try {
          update = await this.read();
        } catch (e) {
          // A file that is briefly missing during an editor's rename is not an error yet.
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') onError(e as Error);
          return;
        }
        try {
          onUpdate(update);
        } catch (e) {
          onError(e as Error);
        }
      });
    };
    const schedule = () => {
      if (this.debounce !== undefined) clearTimeout(this.debounce);
      this.debounce = setTimeout(reread, this.opts.debounceMs ?? 30);
    };
    const name = basename(this.path);
    try {
      this.watcher = watch(dirname(this.path), { persistent: false }, (_event, file) => {
        if (file === null || file === name) schedule();
      });
      this.watcher.on('error', onError);
    } catch (e) {
      onError(e as Error);
    }
    this.poll = setInterval(() => {
      stat(this.path).then(
        (s) => {
          if (`${s.mtimeMs}:${s.size}:${s.ino}` !== this.lastStamp) schedule();
        },
        () => {},
      );
    }, this.opts.pollMs ?? 1000);
    this.poll.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.watcher?.close();
    if (this.poll !== undefined) clearInterval(this.poll);
    if (this.debounce !== undefined) clearTimeout(this.debounce);
  }
}
