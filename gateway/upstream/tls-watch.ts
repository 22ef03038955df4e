/**
 * Follows the files that the policy's backend `tls` blocks name (a client certificate rotated by
 * a certificate manager, a new CA bundle) and says when one changes, so that the snapshot is
 * composed again: the registry then sees new contents and gives those origins new pools, while
 * requests on the old connections finish. Files are looked at by stat, every `pollMs`.
 */
import { unwatchFile, watchFile } from 'node:fs';
import type { CompiledPolicy } from '../policy/compile.js';

export class UpstreamTlsWatch {
  private readonly watched = new Set<string>();
  private readonly listener = () => this.changed();

  constructor(
    private readonly changed: () => void,
    private readonly pollMs = 1000,
  ) {}

  /** Watches the files of this policy's backends, and no others. */
  follow(policy: CompiledPolicy): void {
    const paths = new Set<string>();
    for (const b of policy.backends.values()) {
      for (const p of [b.tls?.ca, b.tls?.cert, b.tls?.key]) if (p !== undefined) paths.add(p);
    }
    for (const p of this.watched) {
      if (!paths.has(p)) {
        unwatchFile(p, this.listener);
        this.watched.delete(p);
      }
    }
    for (const p of paths) {
      if (this.watched.has(p)) continue;
      watchFile(p, { interval: this.pollMs, persistent: false }, this.listener);
      this.watched.add(p);
    }
  }

  close(): void {
    for (const p of this.watched) unwatchFile(p, this.listener);
    this.watched.clear();
  }
}
