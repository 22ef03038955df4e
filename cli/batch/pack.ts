/**
 * `--pack K`: up to K consecutive lines sent as one request, their inputs concatenated on the
 * first (batch) dimension, and the answer's outputs split back into each line's rows. This divides
 * the cost of a request (HTTP, the gateway's pipeline, the backend's decode) by K. Only lines whose
 * inputs are plain numeric tensors with the same names, datatypes and trailing dimensions share a
 * pack; an answer whose outputs are not batch-major, and a pack refused for what it holds (one bad
 * line), are sent again line by line, so each line still gets its own answer or error.
 */
import { type InputDoc, tensorBytes, type WireBody } from './binary.js';
import type { RequestDoc } from './input.js';

export interface PackInfo {
  /** Rows of the line (the first dimension of its inputs). */
  readonly rows: number;
  /** What lines must share to go in one request. */
  readonly key: string;
  readonly bytes: readonly Buffer[];
}

/** The pack facts of a line, or undefined when it must go alone. */
export function packInfo(req: RequestDoc): PackInfo | undefined {
  const doc = req.doc;
  for (const k of Object.keys(doc)) if (k !== 'inputs' && k !== 'id') return undefined;
  let rows: number | undefined;
  const keys: string[] = [];
  const bytes: Buffer[] = [];
  for (const raw of doc.inputs) {
    if (raw === null || typeof raw !== 'object') return undefined;
    const input = raw as InputDoc;
    const shape = input.shape;
    if (typeof input.name !== 'string' || !Array.isArray(shape) || shape.length === 0) return undefined;
    if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0) || input.parameters !== undefined)
      return undefined;
    const elements = shape.reduce((n: number, d: number) => n * d, 1);
    const b = tensorBytes(input);
    if (b === undefined || (input.data as unknown[]).length !== elements) return undefined;
    if (rows === undefined) rows = shape[0] as number;
    else if (rows !== shape[0]) return undefined;
    keys.push(`${input.name}\u0000${String(input.datatype)}\u0000${shape.slice(1).join(',')}`);
    bytes.push(b);
  }
  if (rows === undefined || rows === 0) return undefined;
  return { rows, key: keys.join('\u0001'), bytes };
}

/** One request holding the lines of `pack` (same key), as binary tensors. */
export function packBody(pack: readonly { readonly req: RequestDoc; readonly info: PackInfo }[]): WireBody {
  const first = pack[0];
  if (first === undefined) throw new Error('an empty pack');
  const rows = pack.reduce((n, p) => n + p.info.rows, 0);
  const inputs = (first.req.doc.inputs as InputDoc[]).map((input, i) => {
    const size = pack.reduce((n, p) => n + (p.info.bytes[i] as Buffer).length, 0);
    return {
      name: input.name,
      shape: [rows, ...(input.shape as number[]).slice(1)],
      datatype: input.datatype,
      parameters: { binary_data_size: size },
    };
  });
  const header = Buffer.from(JSON.stringify({ inputs }));
  const parts: Buffer[] = [header];
  for (let i = 0; i < inputs.length; i++) for (const p of pack) parts.push(p.info.bytes[i] as Buffer);
  return { data: Buffer.concat(parts), headerLength: header.length };
}

interface OutputDoc {
  name?: unknown;
  shape?: unknown;
  datatype?: unknown;
  data?: unknown;
}

/** Each line's share of a pack's outputs (by its rows), or undefined when they are not batch-major. */
export function splitOutputs(outputs: unknown, rows: readonly number[]): unknown[][] | undefined {
  if (!Array.isArray(outputs)) return undefined;
  const total = rows.reduce((n, r) => n + r, 0);
  const per: unknown[][] = rows.map(() => []);
  for (const raw of outputs) {
    const o = raw as OutputDoc;
    if (o === null || typeof o !== 'object' || !Array.isArray(o.shape) || !Array.isArray(o.data))
      return undefined;
    if (o.shape[0] !== total || o.data.length % total !== 0) return undefined;
    const width = o.data.length / total;
    let at = 0;
    rows.forEach((r, i) => {
      const data = (o.data as unknown[]).slice(at * width, (at + r) * width);
      at += r;
      (per[i] as unknown[]).push({ ...o, shape: [r, ...(o.shape as number[]).slice(1)], data });
    });
  }
  return per;
}
