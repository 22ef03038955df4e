/** The SHA-256 of a text (UTF-8) or of bytes, as lowercase hex: keys, policies, audited bodies. */
import { createHash } from 'node:crypto';

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}
