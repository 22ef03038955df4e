// The container image's health check (Dockerfile HEALTHCHECK): GET /v2/health/ready on this
// container, exit 0 when it answers 200, else 1. Node only: the image has no curl.
//
// The URL is the first argument, else INFERGATE_HEALTH_URL, else read off the command this
// container runs (/proc/1/cmdline, the entrypoint's node): `gateway` on --port or INFERGATE_PORT
// (8080), `backend` likewise (8001), over https when --tls-cert or INFERGATE_TLS_CERT is set.
// A one-shot command (policy, keys, models) has nothing to check: healthy. The certificate is not
// verified: the check asks this very container over its loopback address.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';

const DEFAULT_PORT = { gateway: '8080', backend: '8001' };
const ONE_SHOT = ['policy', 'keys', 'models', 'canary', 'audit'];

/** The value of `--name V` or `--name=V` in args. */
function flag(args, name) {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === name) return args[i + 1];
    if (args[i].startsWith(`${name}=`)) return args[i].slice(name.length + 1);
  }
  return undefined;
}

function target() {
  const given = process.argv[2] || process.env.INFERGATE_HEALTH_URL;
  if (given) return given;
  let args = [];
  try {
    args = readFileSync('/proc/1/cmdline', 'utf8')
      .split('\0')
      .filter((a) => a !== '');
  } catch {
    // Not Linux, or no /proc: the defaults below.
  }
  const served = (a) => Object.hasOwn(DEFAULT_PORT, a);
  const command = args.find((a) => served(a) || ONE_SHOT.includes(a));
  if (command !== undefined && !served(command)) return undefined;
  const port = flag(args, '--port') || process.env.INFERGATE_PORT || DEFAULT_PORT[command ?? 'gateway'];
  const tls = flag(args, '--tls-cert') || process.env.INFERGATE_TLS_CERT;
  return `${tls ? 'https' : 'http'}://127.0.0.1:${port}/v2/health/ready`;
}

const where = target();
if (where === undefined) process.exit(0);
const url = new URL(where);
const client = url.protocol === 'https:' ? https : http;
const req = client.get(url, { timeout: 2000, rejectUnauthorized: false }, (res) => {
  res.resume();
  process.exit(res.statusCode === 200 ? 0 : 1);
});
req.on('timeout', () => req.destroy(new Error('timed out')));
req.on('error', (e) => {
  process.stderr.write(`health check ${url.href}: ${e.message}\n`);
  process.exit(1);
});
