/**
 * The output file of `infergate batch` and its checkpoint, kept in step: lines are gathered in
 * memory and written in chunks; after each chunk is synced, the checkpoint that counts it is
 * written. The state saved with a chunk is taken at the moment the chunk is cut, so the
 * checkpoint never counts a line the file does not hold, nor misses one it does.
 */
import { type FileHandle, open } from 'node:fs/promises';
import { type Checkpoint, saveCheckpoint } from './checkpoint.js';

export class OutputWriter {
  private pending: string[] = [];
  private pendingBytes = 0;
  private flushing: Promise<void> = Promise.resolve();
  private failed: Error | undefined;

  private constructor(
    private readonly fh: FileHandle,
    private bytes: number,
    private readonly ckptPath: string,
  ) {}

  /** Opens `path` for appending at `bytes` (what the checkpoint counts). */
  static async open(path: string, bytes: number, ckptPath: string): Promise<OutputWriter> {
    const fh = await open(path, 'r+');
    return new OutputWriter(fh, bytes, ckptPath);
  }

  /** Bytes gathered and not yet written. */
  get buffered(): number {
    return this.pendingBytes;
  }

  append(line: string): void {
    const text = `${line}\n`;
    this.pending.push(text);
    this.pendingBytes += Buffer.byteLength(text);
  }

  /**
   * Cuts what is gathered, writes and syncs it, then saves the checkpoint `state` makes now
   * (given the output's length once the chunk is in). Flushes run one after another.
   */
  flush(state: (outputBytes: number) => Checkpoint): Promise<void> {
    if (this.failed !== undefined) return Promise.reject(this.failed);
    const chunk = this.pending.join('');
    const size = this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    const end = this.bytes + size;
    this.bytes = end;
    const ckpt = state(end);
    const position = end - size;
    this.flushing = this.flushing.then(async () => {
      if (size > 0) {
        let written = 0;
        const buf = Buffer.from(chunk);
        while (written < buf.length) {
          const r = await this.fh.write(buf, written, buf.length - written, position + written);
          written += r.bytesWritten;
        }
        await this.fh.datasync();
      }
      await saveCheckpoint(this.ckptPath, ckpt);
    });
    this.flushing.catch((e: Error) => {
      this.failed = e;
    });
    return this.flushing;
  }

  async close(): Promise<void> {
    await this.flushing.catch(() => {});
    await this.fh.close();
  }
}
