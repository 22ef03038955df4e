/**
 * TLS for a listening server (the gateway's ingress, a backend replica): a certificate and its
 * key, and optionally a CA whose client certificates the server requires (mTLS). The files are
 * read and checked when loaded (readable, PEM, the key matches the certificate), and watched:
 * new files are taken with `server.setSecureContext()`, so open connections stay and new ones
 * see the new certificate. A pair that does not match (a rotation halfway through: the
 * certificate written, the key not yet) is logged and skipped; the previous pair keeps serving.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import { createSecureContext, type Server as TlsServer } from 'node:tls';
import type { Logger } from './logging.js';

export interface ServerTlsFiles {
  readonly cert: string;
  readonly key: string;
  /** Clients must present a certificate signed by this CA. */
  readonly clientCa?: string | undefined;
}

/** A TLS file that cannot be used, naming which one (`cert`, `key`, `clientCa`) and why. */
export class TlsFileError extends Error {
  constructor(
    readonly which: keyof ServerTlsFiles,
    readonly file: string,
    message: string,
  ) {
    super(message);
    this.name = 'TlsFileError';
  }
}

export interface ServerTlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca?: Buffer;
  /** The certificate's SHA-256 fingerprint, for logs. */
  readonly fingerprint: string;
  readonly validTo: string;
}

function read(which: keyof ServerTlsFiles, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new TlsFileError(which, file, `cannot read the file (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
}

/** Reads and checks the files: PEM that parses, a key that belongs to the certificate. */
export function loadServerTls(files: ServerTlsFiles): ServerTlsMaterial {
  const cert = read('cert', files.cert);
  const key = read('key', files.key);
  const ca = files.clientCa === undefined ? undefined : read('clientCa', files.clientCa);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (e) {
    throw new TlsFileError('cert', files.cert, `not a PEM certificate (${(e as Error).message})`);
  }
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    privateKey = createPrivateKey(key);
  } catch (e) {
    throw new TlsFileError('key', files.key, `not a PEM private key (${(e as Error).message})`);
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw new TlsFileError('key', files.key, `the key does not belong to the certificate ${files.cert}`);
  }
  if (ca !== undefined) {
    try {
      new X509Certificate(ca);
    } catch (e) {
      throw new TlsFileError(
        'clientCa',
        files.clientCa as string,
        `not a PEM certificate (${(e as Error).message})`,
      );
    }
  }
  // What node itself would refuse (a key it cannot use, say) is refused here too.
  createSecureContext({ cert, key, ...(ca === undefined ? {} : { ca }) });
  return {
    cert,
    key,
    ...(ca === undefined ? {} : { ca }),
    fingerprint: x509.fingerprint256,
    validTo: x509.validTo,
  };
}

/** The server options of the material: with a client CA, client certificates are required. */
export function serverTlsOptions(m: ServerTlsMaterial): {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
  requestCert?: boolean;
  rejectUnauthorized?: boolean;
} {
  return m.ca === undefined
    ? { cert: m.cert, key: m.key }
    : { cert: m.cert, key: m.key, ca: m.ca, requestCert: true, rejectUnauthorized: true };
}

export interface TlsWatch {
  close(): void;
}

/**
 * Watches the files (by stat, so a file replaced by a rename or a symlink swap is seen) and gives
 * the server each new good set. `pollMs`: how often the files are looked at.
 */
export function watchServerTls(
  server: TlsServer,
  files: ServerTlsFiles,
  logger: Logger,
  opts: { pollMs?: number; onReload?: (m: ServerTlsMaterial) => void } = {},
): TlsWatch {
  const paths = [files.cert, files.key, ...(files.clientCa === undefined ? [] : [files.clientCa])];
  const interval = opts.pollMs ?? 1000;
  let last = '';
  const changed = () => {
    let m: ServerTlsMaterial;
    try {
      m = loadServerTls(files);
    } catch (e) {
      const which = e instanceof TlsFileError ? `${e.which} ${e.file}: ` : '';
      logger.warn(
        `TLS files changed but cannot be used (${which}${(e as Error).message}); the previous certificate keeps serving`,
      );
      return;
    }
    const id = `${m.fingerprint}|${m.key.toString('base64')}|${m.ca?.toString('base64') ?? ''}`;
    if (id === last) return;
    last = id;
    const { cert, key, ca } = serverTlsOptions(m);
    server.setSecureContext({ cert, key, ...(ca === undefined ? {} : { ca }) });
    logger.info({ fingerprint: m.fingerprint, validTo: m.validTo }, 'TLS certificate reloaded');
    opts.onReload?.(m);
  };
  // The set in force at start is the baseline: only a change reloads.
  try {
    const m = loadServerTls(files);
    last = `${m.fingerprint}|${m.key.toString('base64')}|${m.ca?.toString('base64') ?? ''}`;
  } catch {
    // Loaded by the caller before; a file already changed is taken at the first poll.
  }
  for (const p of paths) watchFile(p, { interval, persistent: false }, changed);
  return {
    close() {
      for (const p of paths) unwatchFile(p, changed);
    },
  };
}
