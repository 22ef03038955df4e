// Integration-test harness for the backend replica: a real model repository on disk, a real
// fastify server on 127.0.0.1:0, real onnxruntime sessions, and the global fetch as the client.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { IndexEntry } from '../../backend/repository.js';
import { type Backend, type BackendOptions, buildBackend } from '../../backend/server.js';
import { buildModelRepository, CONFIG_FILE, MODEL_FILE } from '../../models/build.js';
import { mulberry32 } from '../../models/reference.js';

/** Absolute path of the repository root (for spawning the CLI). */
export const REPO_ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');

const tempDirs: string[] = [];

/** A fresh temporary directory, removed by `removeTempDirs`. */
export async function tempDir(prefix = 'infergate-it-'): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

export async function removeTempDirs(): Promise<void> {
  const dirs = tempDirs.splice(0);
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
}

/** Builds the sample model repository (simple, mlp v1+v2, mlp-large, text-direction) into a temp dir. */
export async function sampleRepository(): Promise<string> {
  const dir = await tempDir('infergate-models-');
  await buildModelRepository(dir);
  return dir;
}

/** The keys of `<model>/config.yaml`, as the backend reads them. */
export interface ConfigYaml {
  max_batch_size?: number;
  max_queue_delay_ms?: number;
  max_queue_size?: number;
  intra_op_threads?: number;
  inter_op_threads?: number;
  /** Where the session runs: its own worker thread (default) or the event loop. */
  execution?: 'worker' | 'inline';
}

export function renderConfigYaml(config: ConfigYaml): string {
  return Object.entries(config)
    .map(([k, v]) => `${k}: ${v}\n`)
    .join('');
}

/**
 * A repository holding copies of some sample models (every version) with a config of our own.
 * `models` maps a name in the new repository to the sample model it copies and its config.
 */
export async function derivedRepository(
  sample: string,
  models: Record<string, { from: string; versions: string[]; config: ConfigYaml }>,
): Promise<string> {
  const dir = await tempDir('infergate-derived-');
  for (const [name, spec] of Object.entries(models)) {
    for (const v of spec.versions) {
      await mkdir(path.join(dir, name, v), { recursive: true });
      await copyFile(path.join(sample, spec.from, v, MODEL_FILE), path.join(dir, name, v, MODEL_FILE));
    }
    await writeFile(path.join(dir, name, CONFIG_FILE), renderConfigYaml(spec.config));
  }
  return dir;
}

export interface RunningBackend {
  backend: Backend;
  /** `http://127.0.0.1:PORT` */
  url: string;
  close(): Promise<void>;
}

/** buildBackend + listen on 127.0.0.1:0. */
export async function startBackend(opts: BackendOptions): Promise<RunningBackend> {
  const backend = await buildBackend({ processMetrics: false, ...opts });
  const url = await backend.app.listen({ host: '127.0.0.1', port: 0 });
  let closed = false;
  return {
    backend,
    url,
    async close() {
      if (closed) return;
      closed = true;
      await backend.app.close();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// HTTP

export interface HttpResult {
  status: number;
  headers: Headers;
  body: Buffer;
  /** The body parsed as JSON (the JSON header for binary answers); undefined if it is not JSON. */
  json: unknown;
}

export async function request(
  url: string,
  init: { method?: string; body?: string | Uint8Array; headers?: Record<string, string> } = {},
): Promise<HttpResult> {
  const res = await fetch(url, {
    method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
    ...(init.body === undefined ? {} : { body: init.body }),
    headers: init.headers ?? {},
  });
  const body = Buffer.from(await res.arrayBuffer());
  const h = res.headers.get('inference-header-content-length');
  const jsonBytes = h === null ? body : body.subarray(0, Number(h));
  let json: unknown;
  try {
    json = JSON.parse(jsonBytes.toString('utf8'));
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, body, json };
}

export function getJson(base: string, p: string): Promise<HttpResult> {
  return request(base + p);
}

export function postJson(
  base: string,
  p: string,
  doc: unknown,
  headers: Record<string, string> = {},
): Promise<HttpResult> {
  return request(base + p, {
    method: 'POST',
    body: JSON.stringify(doc),
    headers: { 'content-type': 'application/json', ...headers },
  });
}

/** POST /v2/models/{m}[/versions/{v}]/infer with a JSON body. */
/**
 * POST /v2/repository/index and the entries it lists, asserting a 200; without `body` the request
 * has no body at all.
 */
export async function repositoryIndex(base: string, body?: unknown): Promise<IndexEntry[]> {
  const res =
    body === undefined
      ? await request(`${base}/v2/repository/index`, { method: 'POST' })
      : await postJson(base, '/v2/repository/index', body);
  assert.equal(res.status, 200, res.body.toString());
  return res.json as IndexEntry[];
}

export function infer(base: string, model: string, doc: unknown, version?: string): Promise<HttpResult> {
  return postJson(base, inferPath(model, version), doc);
}

export function inferPath(model: string, version?: string): string {
  const m = encodeURIComponent(model);
  return version === undefined ? `/v2/models/${m}/infer` : `/v2/models/${m}/versions/${version}/infer`;
}

/** Little-endian bytes of a typed array (every platform the project supports is little-endian). */
export function leBytes(a: ArrayBufferView): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** BYTES elements in the binary extension's form: 4-byte LE length, then the bytes. */
export function bytesElements(items: readonly Uint8Array[]): Buffer {
  return Buffer.concat(
    items.flatMap((b) => {
      const len = Buffer.alloc(4);
      len.writeUInt32LE(b.length);
      return [len, Buffer.from(b)];
    }),
  );
}

/** A binary-extension body: the JSON header, then the tensors in order. */
export function binaryBody(
  header: unknown,
  tensors: readonly Uint8Array[],
): { body: Buffer; headerLength: number } {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  return { body: Buffer.concat([json, ...tensors]), headerLength: json.length };
}

export function postBinary(
  base: string,
  p: string,
  header: unknown,
  tensors: readonly Uint8Array[],
  extraHeaders: Record<string, string> = {},
): Promise<HttpResult> {
  const { body, headerLength } = binaryBody(header, tensors);
  return request(base + p, {
    method: 'POST',
    body,
    headers: {
      'content-type': 'application/octet-stream',
      'inference-header-content-length': String(headerLength),
      ...extraHeaders,
    },
  });
}

// ---------------------------------------------------------------------------------------------
// Inference answers

export interface OutputJson {
  name: string;
  datatype: string;
  shape: number[];
  data?: unknown[];
  parameters?: { binary_data_size?: number };
}

export interface InferJson {
  model_name: string;
  model_version?: string;
  id?: string;
  outputs: OutputJson[];
}

/** Asserts a 200 JSON inference answer and returns it. */
export function okInfer(res: HttpResult): InferJson {
  assert.equal(
    res.status,
    200,
    `expected 200, got ${res.status}: ${res.body.toString('utf8').slice(0, 500)}`,
  );
  const doc = res.json as InferJson;
  assert.ok(doc !== undefined && Array.isArray(doc.outputs), 'answer is an inference response');
  return doc;
}

export function output(doc: InferJson, name: string): OutputJson {
  const o = doc.outputs.find((x) => x.name === name);
  assert.ok(o, `output '${name}' is in the answer (got ${doc.outputs.map((x) => x.name).join(', ')})`);
  return o;
}

/** The binary tensors of a binary answer, by output name, cut with each binary_data_size. */
export function binaryOutputs(res: HttpResult): Map<string, Buffer> {
  const h = res.headers.get('inference-header-content-length');
  assert.ok(h !== null, 'a binary answer has Inference-Header-Content-Length');
  const headerLength = Number(h);
  assert.ok(Number.isInteger(headerLength) && headerLength > 0 && headerLength <= res.body.length);
  const doc = JSON.parse(res.body.subarray(0, headerLength).toString('utf8')) as InferJson;
  const out = new Map<string, Buffer>();
  let offset = headerLength;
  for (const o of doc.outputs) {
    const size = o.parameters?.binary_data_size;
    if (size === undefined) continue;
    assert.equal(o.data, undefined, `binary output '${o.name}' has no JSON data`);
    out.set(o.name, res.body.subarray(offset, offset + size));
    offset += size;
  }
  assert.equal(offset, res.body.length, 'binary sizes add up to the body after the header');
  return out;
}

export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: number,
  what = '',
): void {
  assert.equal(actual.length, expected.length, `${what} length`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (!(Math.abs(a - e) <= tol)) {
      assert.fail(`${what}[${i}]: ${a} differs from ${e} by more than ${tol}`);
    }
  }
}

/** Asserts the error shape: JSON `{error, code[, field]}`, no stack trace, no source paths. */
export function assertErrorBody(
  res: HttpResult,
  status: number,
  code: string,
): { error: string; field?: string } {
  const text = res.body.toString('utf8');
  assert.equal(res.status, status, `expected ${status} ${code}, got ${res.status}: ${text.slice(0, 500)}`);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/, 'error content-type is JSON');
  const doc = res.json as Record<string, unknown>;
  assert.ok(
    typeof doc === 'object' && doc !== null && !Array.isArray(doc),
    `error body is a JSON object: ${text}`,
  );
  const keys = Object.keys(doc).sort();
  assert.ok(
    keys.every((k) => k === 'error' || k === 'code' || k === 'field'),
    `error body has only error, code, field: ${keys.join(', ')}`,
  );
  assert.equal(typeof doc.error, 'string');
  assert.ok((doc.error as string).length > 0);
  assert.equal(doc.code, code, `code of ${text}`);
  if ('field' in doc) assert.equal(typeof doc.field, 'string');
  assertNoStack(text);
  return doc as { error: string; field?: string };
}

export function assertNoStack(text: string): void {
  assert.doesNotMatch(text, /\n\s+at\s/, 'no stack frames');
  assert.doesNotMatch(text, /\bat .+:\d+:\d+/, 'no stack frames');
  assert.doesNotMatch(text, /node_modules|\.ts:\d|\.js:\d|file:\/\//, 'no source paths');
  assert.doesNotMatch(
    text,
    /\.(?:h|hpp|cc|cpp|c):\d|onnxruntime::/,
    'no onnxruntime source paths or C++ names',
  );
}

// ---------------------------------------------------------------------------------------------
// Prometheus text format

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*/y;

export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = SAMPLE_LINE.exec(line);
    assert.ok(m, `metric line parses: ${line}`);
    const labels: Record<string, string> = {};
    const body = m[2] ?? '';
    LABEL.lastIndex = 0;
    while (LABEL.lastIndex < body.length) {
      const start = LABEL.lastIndex;
      const l = LABEL.exec(body);
      assert.ok(l, `labels parse at ${start}: ${line}`);
      labels[l[1]!] = l[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    }
    const raw = m[3]!;
    const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw);
    out.push({ name: m[1]!, labels, value });
  }
  return out;
}

export async function scrape(base: string): Promise<{ text: string; samples: Sample[] }> {
  const res = await request(`${base}/metrics`);
  assert.equal(res.status, 200);
  const text = res.body.toString('utf8');
  return { text, samples: parseMetrics(text) };
}

/** The one sample with this name whose labels include `labels`; undefined if none. */
export function sampleValue(
  samples: Sample[],
  name: string,
  labels: Record<string, string>,
): number | undefined {
  const found = samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  assert.ok(found.length <= 1, `at most one ${name} sample matches ${JSON.stringify(labels)}`);
  return found[0]?.value;
}

/** `{sum, count}` of a histogram series (0 when the series does not exist yet). */
export function histogram(
  samples: Sample[],
  name: string,
  labels: Record<string, string>,
): { sum: number; count: number } {
  return {
    sum: sampleValue(samples, `${name}_sum`, labels) ?? 0,
    count: sampleValue(samples, `${name}_count`, labels) ?? 0,
  };
}

/** Path of `promtool` (Debian's prometheus package), or '' where it is not installed. */
export const PROMTOOL = spawnSync('sh', ['-c', 'command -v promtool'], { encoding: 'utf8' }).stdout.trim();

/** Runs `promtool check metrics` on an exposition; resolves with its exit code and output. */
export async function promtoolCheck(text: string): Promise<{ code: number | null; output: string }> {
  const child = spawn(PROMTOOL, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (c: Buffer) => {
    output += c.toString();
  });
  child.stderr.on('data', (c: Buffer) => {
    output += c.toString();
  });
  const code = await new Promise<number | null>((resolve) => {
    child.on('close', resolve);
    child.stdin.end(text);
  });
  return { code, output };
}

// ---------------------------------------------------------------------------------------------
// Waiting and raw HTTP

const WAIT_FIRST_MS = 5;
const WAIT_MAX_MS = 50;

/**
 * Polls `check` until it returns a value other than undefined. For conditions that only an
 * outside observer can see (a queue gauge); fails after `timeoutMs` with `what`, also when one
 * check hangs. Between checks it sleeps, 5 ms at first, doubling up to 50 ms, so it never spins
 * the event loop the code under test needs.
 */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  const timedOut = () =>
    new assert.AssertionError({ message: `timed out after ${timeoutMs} ms waiting for ${what}` });
  let timer: NodeJS.Timeout | undefined;
  const expiry = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(timedOut()), timeoutMs);
  });
  expiry.catch(() => {}); // only a race below may see the rejection
  try {
    for (let pauseMs = WAIT_FIRST_MS; ; pauseMs = Math.min(pauseMs * 2, WAIT_MAX_MS)) {
      const v = await Promise.race([check(), expiry]);
      if (v !== undefined) return v;
      const left = deadline - performance.now();
      if (left <= 0) throw timedOut();
      await new Promise((r) => setTimeout(r, Math.min(pauseMs, left)));
    }
  } finally {
    clearTimeout(timer);
  }
}

/** A request whose path is sent byte for byte (fetch normalizes `..` and `%2E%2E`). */
export function rawHttp(
  base: string,
  method: string,
  rawPath: string,
  /** Pieces written one by one make a chunked body (no Content-Length). */
  body?: string | readonly string[],
): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        method,
        path: rawPath,
        agent: false,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (typeof body === 'string' || body === undefined) {
      req.end(body);
    } else {
      for (const piece of body) req.write(piece);
      req.end();
    }
  });
}

/**
 * A JSON inference request with one FP32 input `x`, the input of the sample `mlp` models (and
 * `mlp-large`): by default one row holding all of `x`.
 */
export function xDoc(x: Float32Array, shape: readonly number[] = [1, x.length], id?: string) {
  return {
    ...(id === undefined ? {} : { id }),
    inputs: [{ name: 'x', shape: [...shape], datatype: 'FP32', data: Array.from(x) }],
  };
}

/** Deterministic pseudo-random floats in [-1, 1). */
export function randomFloats(seed: number, n: number): Float32Array {
  const next = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = next() * 2 - 1;
  return out;
}

// ---------------------------------------------------------------------------------------------
// A request whose body is held back

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * Sends a request's head with `Expect: 100-continue` and resolves once the server answered
 * `100 Continue`, that is, once the server has parsed the head and is waiting for the body: the
 * connection is busy, not idle, from then on. `send()` writes the body and reads the answer.
 */
export async function heldRequest(
  base: string,
  method: string,
  path_: string,
  body: string,
  headers: Record<string, string> = {},
): Promise<{ send(): Promise<RawResponse> }> {
  const u = new URL(base);
  const socket = net.connect(Number(u.port), u.hostname);
  let buf = Buffer.alloc(0);
  let onData: (() => void) | undefined;
  let failure: Error | undefined;
  let ended = false;
  socket.on('data', (c: Buffer) => {
    buf = Buffer.concat([buf, c]);
    onData?.();
  });
  socket.on('error', (e) => {
    failure = e;
    onData?.();
  });
  socket.on('end', () => {
    ended = true;
    onData?.();
  });
  const until = <T>(parse: () => T | undefined): Promise<T> =>
    new Promise((resolve, reject) => {
      const check = () => {
        const v = parse();
        if (v !== undefined) {
          onData = undefined;
          resolve(v);
        } else if (failure !== undefined || ended) {
          onData = undefined;
          reject(failure ?? new Error(`connection ended: ${buf.toString('utf8')}`));
        }
      };
      onData = check;
      check();
    });
  const head = [
    `${method} ${path_} HTTP/1.1`,
    `host: ${u.host}`,
    'content-type: application/json',
    `content-length: ${Buffer.byteLength(body)}`,
    'expect: 100-continue',
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    '',
    '',
  ].join('\r\n');
  socket.write(head);
  await until(() => {
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) return undefined;
    const line = buf.subarray(0, end).toString('latin1');
    assert.match(line, /^HTTP\/1\.1 100 /, 'the server asks for the body');
    buf = buf.subarray(end + 4);
    return true;
  });
  return {
    async send() {
      socket.write(body);
      const res = await until(() => {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return undefined;
        const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
        const status = Number(lines[0]!.split(' ')[1]);
        const hs: Record<string, string> = {};
        for (const l of lines.slice(1)) {
          const i = l.indexOf(':');
          hs[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
        }
        const length = Number(hs['content-length'] ?? 0);
        if (buf.length < end + 4 + length) return undefined;
        return { status, headers: hs, body: buf.subarray(end + 4, end + 4 + length).toString('utf8') };
      });
      socket.destroy();
      return res;
    },
  };
}

/**
 * Opens a connection and sends a request head without its final blank line, so the server has a
 * request in progress on it (a busy connection is not closed as idle when the server drains).
 * The server reads it before it answers any later request (`fetch` to /v2/health/live is used as
 * the barrier). `finish()` completes the head and reads the answer.
 */
export async function partialRequest(
  base: string,
  method: string,
  path_: string,
): Promise<{ finish(): Promise<RawResponse> }> {
  const u = new URL(base);
  const socket = net.connect(Number(u.port), u.hostname);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  let buf = Buffer.alloc(0);
  socket.on('data', (c: Buffer) => {
    buf = Buffer.concat([buf, c]);
  });
  await new Promise<void>((resolve) =>
    socket.write(`${method} ${path_} HTTP/1.1\r\nhost: ${u.host}\r\n`, () => resolve()),
  );
  const barrier = await fetch(`${base}/v2/health/live`);
  await barrier.arrayBuffer();
  return {
    finish() {
      return new Promise<RawResponse>((resolve, reject) => {
        const parse = () => {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return false;
          const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
          const headers: Record<string, string> = {};
          for (const l of lines.slice(1)) {
            const i = l.indexOf(':');
            headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
          }
          const length = Number(headers['content-length'] ?? 0);
          if (buf.length < end + 4 + length) return false;
          socket.destroy();
          resolve({
            status: Number(lines[0]!.split(' ')[1]),
            headers,
            body: buf.subarray(end + 4, end + 4 + length).toString('utf8'),
          });
          return true;
        };
        socket.on('data', () => parse());
        socket.once('error', reject);
        socket.once('end', () => {
          if (!parse()) reject(new Error(`connection ended before an answer: ${buf.toString('utf8')}`));
        });
        socket.write('\r\n');
      });
    },
  };
}
