import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** What a client's request id may be: up to 128 visible ASCII characters. */
const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;
/** A random prefix per process and a counter: unique across a fleet, and cheaper than a UUID. */
const PREFIX = randomBytes(6).toString('hex');
let counter = 0;

export function nextRequestId(): string {
  counter += 1;
  return `${PREFIX}-${counter.toString(36)}`;
}

/**
 * fastify's `genReqId` for both tiers: the client's `x-request-id` when it is a sane token (it
 * lands in logs and headers), else a new one.
 */
export function requestId(req: IncomingMessage): string {
  const id = req.headers['x-request-id'];
  return typeof id === 'string' && REQUEST_ID.test(id) ? id : nextRequestId();
}
