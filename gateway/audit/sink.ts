/**
 * Where audit lines go: a file rotated by size (`FILE` -> `FILE.1` -> ... -> `FILE.<keep>`), or
 * a stream the CLI hands over (stdout for `--audit-log -`). Writes are whole batches of lines;
 * the audit log never has more than one in flight.
 */
import { type FileHandle, open, rename, stat } from 'node:fs/promises';
import type { Writable } from 'node:stream';

export interface AuditSink {
  write(text: string): Promise<void>;
  close(): Promise<void>;
}

/** Appends to `path`; past `maxBytes` the file is rotated before the batch that would cross it. */
export class RotatingFileSink implements AuditSink {
  private handle: FileHandle | undefined;
  private size = 0;

  constructor(
    readonly path: string,
    private readonly maxBytes: number,
    private readonly keep = 5,
  ) {}

  async write(text: string): Promise<void> {
    const bytes = Buffer.byteLength(text);
    if (this.handle === undefined) await this.openFile();
    if (this.size > 0 && this.size + bytes > this.maxBytes) await this.rotate();
    await (this.handle as FileHandle).write(text);
    this.size += bytes;
  }

  private async openFile(): Promise<void> {
    this.handle = await open(this.path, 'a', 0o640);
    this.size = (await stat(this.path)).size;
  }

  private async rotate(): Promise<void> {
    await this.handle?.close();
    this.handle = undefined;
    for (let i = this.keep - 1; i >= 1; i--) {
      await rename(`${this.path}.${i}`, `${this.path}.${i + 1}`).catch(ignoreMissing);
    }
    await rename(this.path, `${this.path}.1`).catch(ignoreMissing);
    await this.openFile();
  }

  async close(): Promise<void> {
    await this.handle?.close();
    this.handle = undefined;
  }
}

function ignoreMissing(e: NodeJS.ErrnoException): void {
  if (e.code !== 'ENOENT') throw e;
}

/** Writes to a stream (stdout); waits for it to drain when it asks to. */
export class StreamSink implements AuditSink {
  constructor(private readonly stream: Writable) {}

  write(text: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.stream.write(text, (e) => (e ? reject(e) : resolve()));
    });
  }

  async close(): Promise<void> {}
}
