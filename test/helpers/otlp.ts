// An OTLP/HTTP traces receiver for tests: a plain node:http server taking POST /v1/traces with
// the JSON encoding that @opentelemetry/exporter-trace-otlp-http sends, flattening each export
// into spans with their service name, parent, kind, attributes and links.
import http from 'node:http';
import type net from 'node:net';
import type { TracingConfig } from '../../common/telemetry/config.js';
import { TRACING_DEFAULTS } from '../../common/telemetry/config.js';

type AnyValue = {
  stringValue?: string;
  intValue?: number | string;
  doubleValue?: number;
  boolValue?: boolean;
};
type KeyValue = { key: string; value: AnyValue };

export interface ReceivedSpan {
  service: string;
  name: string;
  kind: number;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  attributes: Record<string, string | number | boolean>;
  links: { traceId: string; spanId: string }[];
  startNs: bigint;
  endNs: bigint;
  status: number;
}

export const KIND = { INTERNAL: 1, SERVER: 2, CLIENT: 3 } as const;

function value(v: AnyValue): string | number | boolean {
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  return v.boolValue ?? '';
}

function attributes(list: KeyValue[] | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const kv of list ?? []) out[kv.key] = value(kv.value);
  return out;
}

export interface OtlpReceiver {
  url: string;
  spans: ReceivedSpan[];
  /** Raw bodies received, for checks that no secret was exported. */
  bodies: string[];
  /** Resolves with the spans once `check` holds on them (or rejects at the deadline). */
  waitFor(
    what: string,
    check: (spans: ReceivedSpan[]) => boolean,
    timeoutMs?: number,
  ): Promise<ReceivedSpan[]>;
  /** A tracing config exporting here, every `exportDelayMs`. */
  config(serviceName: string, more?: Partial<TracingConfig>): TracingConfig;
  close(): Promise<void>;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const bodies: string[] = [];
  const waiters = new Set<() => void>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      const text = Buffer.concat(chunks).toString('utf8');
      bodies.push(text);
      const doc = JSON.parse(text) as {
        resourceSpans: {
          resource: { attributes: KeyValue[] };
          scopeSpans: {
            spans: {
              name: string;
              kind: number;
              traceId: string;
              spanId: string;
              parentSpanId?: string;
              attributes?: KeyValue[];
              links?: { traceId: string; spanId: string }[];
              startTimeUnixNano: string;
              endTimeUnixNano: string;
              status?: { code?: number };
            }[];
          }[];
        }[];
      };
      for (const rs of doc.resourceSpans) {
        const service = String(attributes(rs.resource.attributes)['service.name']);
        for (const ss of rs.scopeSpans) {
          for (const s of ss.spans) {
            spans.push({
              service,
              name: s.name,
              kind: s.kind,
              traceId: s.traceId,
              spanId: s.spanId,
              parentSpanId: s.parentSpanId ?? '',
              attributes: attributes(s.attributes),
              links: (s.links ?? []).map((l) => ({ traceId: l.traceId, spanId: l.spanId })),
              startNs: BigInt(s.startTimeUnixNano),
              endNs: BigInt(s.endTimeUnixNano),
              status: s.status?.code ?? 0,
            });
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      for (const w of waiters) w();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    spans,
    bodies,
    waitFor(what, check, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const test = () => {
          if (!check(spans)) return;
          clearTimeout(timer);
          waiters.delete(test);
          resolve(spans);
        };
        const timer = setTimeout(() => {
          waiters.delete(test);
          reject(new Error(`OTLP receiver: ${what} not received within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.add(test);
        test();
      });
    },
    config(serviceName, more = {}) {
      return {
        ...TRACING_DEFAULTS,
        serviceName,
        endpoint: `${url}/v1/traces`,
        headers: {},
        resource: {},
        exportDelayMs: 20,
        ...more,
      };
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
