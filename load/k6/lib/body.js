// The request body the scripts send: INPUT_FILE's OIP request, or one built for a sample model;
// as JSON, or (BINARY=1) with the binary tensor data extension: the JSON header with each input's
// `binary_data_size`, then the tensors' raw little-endian bytes, the header's length in
// Inference-Header-Content-Length.

const TYPED = {
  BOOL: Uint8Array,
  UINT8: Uint8Array,
  UINT16: Uint16Array,
  UINT32: Uint32Array,
  INT8: Int8Array,
  INT16: Int16Array,
  INT32: Int32Array,
  FP32: Float32Array,
  FP64: Float64Array,
};

const range = (n, f) => Array.from({ length: n }, (_, i) => f(i));

/** A request for the sample models (models/build.ts), the same numbers every time. */
export function sampleRequest(model) {
  if (model === 'simple') {
    const data = range(16, (i) => i);
    return {
      inputs: [
        { name: 'INPUT0', shape: [1, 16], datatype: 'INT32', data },
        { name: 'INPUT1', shape: [1, 16], datatype: 'INT32', data },
      ],
    };
  }
  const width = model === 'mlp-large' ? 512 : model === 'mlp' ? 64 : undefined;
  if (width === undefined) {
    throw new Error(`MODEL '${model}' has no built-in body: give INPUT_FILE (an OIP request, JSON)`);
  }
  return {
    inputs: [{ name: 'x', shape: [1, width], datatype: 'FP32', data: range(width, (i) => i / width) }],
  };
}

function flatten(data, out = []) {
  for (const v of data) {
    if (Array.isArray(v)) flatten(v, out);
    else out.push(v);
  }
  return out;
}

/** UTF-8 bytes of `s` (k6 has no TextEncoder everywhere). */
export function utf8(s) {
  const out = [];
  for (const ch of s) {
    const c = ch.codePointAt(0);
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  }
  return Uint8Array.from(out);
}

/** `request` (an OIP request object) with its inputs as binary data: { body: ArrayBuffer, headerLength }. */
export function binaryBody(request) {
  if (request === null || !Array.isArray(request.inputs)) throw new Error('INPUT_FILE: no inputs array');
  const tensors = [];
  const inputs = request.inputs.map((t, i) => {
    const Typed = TYPED[t.datatype];
    if (Typed === undefined) {
      throw new Error(`inputs[${i}].datatype: '${t.datatype}' cannot be sent as binary data here`);
    }
    const values = flatten(Array.isArray(t.data) ? t.data : [t.data]).map((v) =>
      t.datatype === 'BOOL' ? (v ? 1 : 0) : v,
    );
    const bytes = new Uint8Array(Typed.from(values).buffer);
    tensors.push(bytes);
    const { data: _data, ...rest } = t;
    return { ...rest, parameters: { ...(t.parameters || {}), binary_data_size: bytes.length } };
  });
  const header = utf8(JSON.stringify({ ...request, inputs }));
  const out = new Uint8Array(header.length + tensors.reduce((a, b) => a + b.length, 0));
  out.set(header, 0);
  let at = header.length;
  for (const b of tensors) {
    out.set(b, at);
    at += b.length;
  }
  return { body: out.buffer, headerLength: header.length };
}

/**
 * What every request carries: `{ body, headers }`. `fileText` is INPUT_FILE's content (the
 * script reads it with open() in its init context), undefined for the built-in body.
 */
export function payload(cfg, fileText) {
  let request;
  if (fileText === undefined) request = sampleRequest(cfg.model);
  else {
    try {
      request = JSON.parse(fileText);
    } catch (e) {
      throw new Error(`INPUT_FILE: ${cfg.inputFile} is not JSON (${e.message})`);
    }
  }
  const headers = { 'content-type': 'application/json' };
  if (cfg.apiKey !== undefined) headers['x-api-key'] = cfg.apiKey;
  if (!cfg.binary) return { body: JSON.stringify(request), headers };
  const b = binaryBody(request);
  headers['content-type'] = 'application/octet-stream';
  headers['inference-header-content-length'] = String(b.headerLength);
  return { body: b.body, headers };
}
