// One inference request through the gateway, with the checks every scenario makes on its answer.
import { check } from 'k6';
import http from 'k6/http';

/** The variant that answered, from the gateway's x-infergate-variant header ('none' without one). */
export function variantOf(res) {
  return res.headers['X-Infergate-Variant'] || res.headers['x-infergate-variant'] || 'none';
}

/** The answer's JSON part: the whole body, or its header under the binary extension. */
function answerJson(res) {
  const length = res.headers['Inference-Header-Content-Length'];
  const text = typeof res.body === 'string' ? res.body : '';
  return JSON.parse(length === undefined ? text : text.slice(0, Number(length)));
}

/**
 * POSTs `p` (from body.js payload) to the model's infer URL as user `user` (x-user-id, for
 * sticky splits) and checks the answer; returns the response.
 */
export function infer(cfg, p, user) {
  const headers = user === undefined ? p.headers : { ...p.headers, 'x-user-id': user };
  const res = http.post(`${cfg.base}${cfg.path}`, p.body, { headers, tags: { name: `infer ${cfg.model}` } });
  check(res, {
    'status is 200': (r) => r.status === 200,
    'answer has outputs': (r) => {
      try {
        const outputs = answerJson(r).outputs;
        return Array.isArray(outputs) && outputs.length > 0;
      } catch (_) {
        return false;
      }
    },
  });
  return res;
}

/** A user id for this iteration, one of `users`. */
export const randomUser = (users) => `user-${Math.floor(Math.random() * users)}`;
