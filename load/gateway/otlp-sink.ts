/**
 * An OTLP/HTTP sink for `--trace-ratio`: accepts every export (POST /v1/traces) and drops it, so
 * that the gateway under test pays for making and exporting its spans as it would against Jaeger.
 * It runs in the harness's process, whose CPU is not counted as the gateway's.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { onCleanup } from './processes.js';

let sink: Promise<string> | undefined;

/** The sink's base URL (for OTEL_EXPORTER_OTLP_ENDPOINT), started on first use. */
export function otlpSink(): Promise<string> {
  sink ??= new Promise((resolve) => {
    const server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
    });
    server.listen(0, '127.0.0.1', () => {
      onCleanup({
        name: 'otlp-sink',
        pids: () => [],
        stop: () => new Promise<void>((done) => server.close(() => done())),
      });
      resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    });
    server.unref();
  });
  return sink;
}
