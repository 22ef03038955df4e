// The settings every k6 script reads from the environment (`k6 run -e NAME=value`), read once in
// the init context and checked: a bad value stops the run before any request with the variable's
// name in the message.
//
//   URL or BASE_URL  the gateway (default http://127.0.0.1:8080)
//   MODEL            the model to infer (default mlp); VERSION optionally pins a version
//   INPUT_FILE       an OIP request body (JSON) to send, read with k6's open(); default: a body
//                    built for the sample models simple, mlp and mlp-large
//   API_KEY          sent as x-api-key
//   BINARY=1         send the body with the binary tensor data extension instead of JSON
//   USERS            distinct x-user-id values, for sticky splits (default 1000)
//   ERROR_RATE, P95_MS, P99_MS   the thresholds (defaults 0.01, 250, 500)

/** `env[name]`, or `fallback` when unset or empty. */
export function text(env, name, fallback) {
  const v = env[name];
  return v === undefined || v === '' ? fallback : String(v);
}

/** `env[name]` as a finite number in [min, max], or `fallback` when unset. */
export function number(env, name, fallback, min = 0, max = Number.MAX_SAFE_INTEGER) {
  const v = text(env, name, undefined);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max) {
    throw new Error(`${name}: '${v}' is not a number in [${min}, ${max}]`);
  }
  return n;
}

/** A k6 duration ("90s", "5m", "1h30m") in seconds. */
export function seconds(name, value) {
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(value);
  if (m === null || value === '') throw new Error(`${name}: '${value}' is not a duration like 30s, 5m or 1h`);
  return Number(m[1] || 0) * 3600 + Number(m[2] || 0) * 60 + Number(m[3] || 0);
}

export function readConfig(env) {
  const base = text(env, 'URL', text(env, 'BASE_URL', 'http://127.0.0.1:8080')).replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]/.test(base)) throw new Error(`URL: '${base}' is not an http(s) URL`);
  const model = text(env, 'MODEL', 'mlp');
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(model)) throw new Error(`MODEL: '${model}' is not a model name`);
  const version = text(env, 'VERSION', undefined);
  const binary = text(env, 'BINARY', '0');
  if (binary !== '0' && binary !== '1') throw new Error(`BINARY: '${binary}' is neither 0 nor 1`);
  return {
    base,
    model,
    path: `/v2/models/${model}${version === undefined ? '' : `/versions/${version}`}/infer`,
    inputFile: text(env, 'INPUT_FILE', undefined),
    apiKey: text(env, 'API_KEY', undefined),
    binary: binary === '1',
    users: number(env, 'USERS', 1000, 1),
    errorRate: number(env, 'ERROR_RATE', 0.01, 0, 1),
    p95Ms: number(env, 'P95_MS', 250, 0),
    p99Ms: number(env, 'P99_MS', 500, 0),
  };
}

/** The thresholds every scenario keeps: the error rate, p95 and p99 of the whole request. */
export function thresholds(cfg) {
  return {
    http_req_failed: [`rate<${cfg.errorRate}`],
    http_req_duration: [`p(95)<${cfg.p95Ms}`, `p(99)<${cfg.p99Ms}`],
    checks: [`rate>${1 - cfg.errorRate}`],
  };
}

/** VUs for an arrival-rate executor at up to `rate` iterations a second (k6 starts more as needed). */
export function arrivalVus(rate) {
  return { preAllocatedVUs: Math.max(10, Math.ceil(rate / 20)), maxVUs: Math.max(50, Math.ceil(rate)) };
}
