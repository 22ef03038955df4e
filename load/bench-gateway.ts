/**
 * `npm run bench:gateway`: what the gateway adds in front of one upstream, every figure a ratio
 * taken in one run on this machine, on the cheap `simple` model (~250-byte JSON answers).
 *
 * Targets (load/gateway/targets.ts), all in front of the same upstream:
 * - direct:   the upstream itself;
 * - gateway:  `infergate gateway` of this checkout, with a one-model policy;
 * - baseline: with --baseline REF, the gateway of REF (a git worktree), same policy, same upstream;
 * - nginx:    a plain reverse proxy (upstream keep-alive, HTTP/1.1), when `nginx` is installed;
 * - relay:    a bare node:http server relaying with undici `dispatch`: the floor for a Node proxy.
 *
 * Phases (load/gateway/phases/), each cut into slices that the targets take in turns, the order
 * rotated and reversed from slice to slice (turnOrder in load/common.ts):
 * - light:      open loop at --rate req/s (default 200), microsecond clock, in front of the backend;
 * - saturation: autocannon, 32 connections, in front of the backend;
 * - cpu:        the proxy's own CPU per request at 8 connections (schedstat), in front of the backend;
 * - moderate:   closed loop, 8 keep-alive connections, in front of a fake upstream that answers
 *               after --upstream-delay-ms (default 5); added p50 per proxy, and wrk as a
 *               cross-check where it is on PATH (--no-wrk skips it).
 *
 * Options: --quick (fewer requests), --runs N (every phase N times; medians of per-run ratios),
 * --only PHASE[,PHASE] (those phases only), --rate R, --targets LIST (default
 * direct,gateway,nginx,relay), --baseline REF, --upstream-delay-ms MS, --no-wrk, --security
 * off|auth|keys|redis (the gateway target with an API key, alone or with rate limits local or in
 * Redis), --compiled
 * (backend and gateway from `npm run build` output in dist/), --profile [--profile-target relay]
 * (a V8 CPU profile of the gateway or relay under load instead; see load/gateway/profile.ts).
 * Writes a table to stdout and JSON to load/results/gateway-latest.json.
 */
import './usage.js';
import { writeResult } from './common.js';
import { parseOptions } from './gateway/options.js';
import { benchGateway } from './gateway/run.js';

const result = await benchGateway(parseOptions(process.argv.slice(2)));
if (result !== undefined) await writeResult('gateway-latest.json', result);
