/**
 * The flags that govern what a server allows its clients, shared by `infergate gateway` and
 * `infergate backend`: header, request and keep-alive timeouts and the connection cap.
 */
import {
  checkClientLimits,
  type ClientLimits,
  ClientLimitsError,
  DEFAULT_CLIENT_LIMITS,
} from '../common/client-limits.js';
import { nonNegativeInt, positiveInt, setting, UsageError } from './args.js';

export const CLIENT_FLAGS = {
  'headers-timeout-ms': { type: 'string' },
  'request-timeout-ms': { type: 'string' },
  'keep-alive-timeout-ms': { type: 'string' },
  'max-connections': { type: 'string' },
} as const;

const FLAG_OF: Record<keyof ClientLimits, string> = {
  headersTimeoutMs: '--headers-timeout-ms',
  requestTimeoutMs: '--request-timeout-ms',
  keepAliveTimeoutMs: '--keep-alive-timeout-ms',
  maxConnections: '--max-connections',
};

export const CLIENT_FLAGS_HELP = `Clients: --headers-timeout-ms (${DEFAULT_CLIENT_LIMITS.headersTimeoutMs}) for a request's head, --request-timeout-ms (${DEFAULT_CLIENT_LIMITS.requestTimeoutMs}, 0: none)
for the whole request with its body, --keep-alive-timeout-ms (${DEFAULT_CLIENT_LIMITS.keepAliveTimeoutMs}) for an idle connection, and
--max-connections (${DEFAULT_CLIENT_LIMITS.maxConnections}, 0: no cap; beyond it new connections are closed as they are accepted).
A slow client gets 408, a malformed request 400, headers over 16 KiB 431, in the error catalogue's form.`;

export const CLIENT_ENV_HELP =
  'INFERGATE_HEADERS_TIMEOUT_MS, INFERGATE_REQUEST_TIMEOUT_MS, INFERGATE_KEEP_ALIVE_TIMEOUT_MS, INFERGATE_MAX_CONNECTIONS';

export function clientLimits(values: {
  'headers-timeout-ms'?: string | undefined;
  'request-timeout-ms'?: string | undefined;
  'keep-alive-timeout-ms'?: string | undefined;
  'max-connections'?: string | undefined;
}): ClientLimits {
  const d = DEFAULT_CLIENT_LIMITS;
  const limits: ClientLimits = {
    headersTimeoutMs: positiveInt(
      setting(values['headers-timeout-ms'], 'INFERGATE_HEADERS_TIMEOUT_MS', String(d.headersTimeoutMs)),
      '--headers-timeout-ms',
    ),
    requestTimeoutMs: nonNegativeInt(
      setting(values['request-timeout-ms'], 'INFERGATE_REQUEST_TIMEOUT_MS', String(d.requestTimeoutMs)),
      '--request-timeout-ms',
    ),
    keepAliveTimeoutMs: positiveInt(
      setting(
        values['keep-alive-timeout-ms'],
        'INFERGATE_KEEP_ALIVE_TIMEOUT_MS',
        String(d.keepAliveTimeoutMs),
      ),
      '--keep-alive-timeout-ms',
    ),
    maxConnections: nonNegativeInt(
      setting(values['max-connections'], 'INFERGATE_MAX_CONNECTIONS', String(d.maxConnections)),
      '--max-connections',
    ),
  };
  try {
    return checkClientLimits(limits);
  } catch (e) {
    if (e instanceof ClientLimitsError) {
      const message = e.message.replace(
        /\b(headersTimeoutMs|requestTimeoutMs|keepAliveTimeoutMs|maxConnections)\b/g,
        (k) => FLAG_OF[k as keyof ClientLimits],
      );
      throw new UsageError(message);
    }
    throw e;
  }
}
