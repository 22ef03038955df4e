// Test certificates made with openssl, once per test file: a CA, server certificates for
// 127.0.0.1 and localhost (two of them, for rotation), a client certificate signed by the CA, and
// one signed by another CA that the servers do not trust. EC P-256 keys: quick to make.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { tempDir } from './backend.js';

export interface CertPair {
  readonly cert: string;
  readonly key: string;
}

export interface TestCerts {
  readonly dir: string;
  /** The CA that signed everything below but `strangerClient`. */
  readonly ca: string;
  /** Server certificates for 127.0.0.1, ::1 and localhost. */
  readonly server: CertPair;
  readonly server2: CertPair;
  /** A server certificate for the name `replica.internal` only (for serverName). */
  readonly named: CertPair;
  readonly client: CertPair;
  /** Another client certificate of the CA (for rotation). */
  readonly client2: CertPair;
  /** Signed by a CA nobody trusts. */
  readonly strangerClient: CertPair;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function key(dir: string, name: string): string {
  const file = path.join(dir, `${name}-key.pem`);
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file], dir);
  return file;
}

function selfSigned(dir: string, name: string): CertPair {
  const k = key(dir, name);
  const cert = path.join(dir, `${name}.pem`);
  openssl(
    [
      'req',
      '-x509',
      '-new',
      '-key',
      k,
      '-sha256',
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
      '-out',
      cert,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  );
  return { cert, key: k };
}

function signed(dir: string, ca: CertPair, name: string, ext: string): CertPair {
  const k = key(dir, name);
  const csr = path.join(dir, `${name}.csr`);
  const cert = path.join(dir, `${name}.pem`);
  const extFile = path.join(dir, `${name}.ext`);
  writeFileSync(extFile, `${ext}\n`);
  openssl(['req', '-new', '-key', k, '-subj', `/CN=${name}`, '-out', csr], dir);
  openssl(
    [
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      ca.cert,
      '-CAkey',
      ca.key,
      '-CAcreateserial',
      '-days',
      '2',
      '-sha256',
      '-extfile',
      extFile,
      '-out',
      cert,
    ],
    dir,
  );
  return { cert, key: k };
}

const SERVER_EXT = 'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\nextendedKeyUsage=serverAuth';

export async function makeCerts(): Promise<TestCerts> {
  const dir = await tempDir('infergate-certs-');
  const ca = selfSigned(dir, 'ca');
  const stranger = selfSigned(dir, 'stranger-ca');
  return {
    dir,
    ca: ca.cert,
    server: signed(dir, ca, 'server', SERVER_EXT),
    server2: signed(dir, ca, 'server2', SERVER_EXT),
    named: signed(dir, ca, 'named', 'subjectAltName=DNS:replica.internal\nextendedKeyUsage=serverAuth'),
    client: signed(dir, ca, 'client', 'extendedKeyUsage=clientAuth'),
    client2: signed(dir, ca, 'client2', 'extendedKeyUsage=clientAuth'),
    strangerClient: signed(dir, stranger, 'stranger', 'extendedKeyUsage=clientAuth'),
  };
}
