// Requests with exactly the headers and path a test writes (repeated headers, any case, escaped
// paths), and the keys and policies the security tests share.
import { createHash } from 'node:crypto';
import http from 'node:http';

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  /** The error body's code, when it is one. */
  code: string | undefined;
}

/** One request on its own connection; `headers` as node's rawHeaders: name, value, name, value. */
export function send(
  base: string,
  opts: { method?: string; path: string; headers?: string[]; body?: string },
): Promise<Answer> {
  const u = new URL(base);
  const body = opts.body ?? (opts.method === 'GET' ? undefined : '{}');
  // With headers as an array node adds none of its own: Host is ours to send.
  const headers = ['host', u.host, ...(opts.headers ?? [])];
  if (body !== undefined)
    headers.push('content-type', 'application/json', 'content-length', String(Buffer.byteLength(body)));
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        method: opts.method ?? 'POST',
        path: opts.path,
        agent: false,
        headers,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let code: string | undefined;
          try {
            code = (JSON.parse(text) as { code?: string }).code;
          } catch {
            code = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, code });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

export const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
