import { type ChildProcess, spawn } from 'node:child_process';
import { access } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogger, type Logger } from '../common/logging.js';
import { logOutput } from './log-output.js';
import { buildModelRepository, missingSampleModelFiles } from '../models/build.js';
import { parse, port, setting } from './args.js';
import { AUDIT_FLAGS } from './audit.js';
import { FLEET_FLAGS, fleetTarget } from './fleet.js';

const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(PACKAGE_ROOT, 'bin', 'infergate.js');

/**
 * The replicas of the local stack. Their ports are the endpoints of `policies/default.yaml`:
 * mlp version 1 on two replicas, version 2 on the third, `simple` and `text-direction` on all.
 */
export const UP_REPLICAS: readonly {
  readonly port: number;
  readonly models: string;
  readonly backend: string;
}[] = [
  { port: 8001, models: 'mlp:1,simple,text-direction', backend: 'mlp-v1' },
  { port: 8002, models: 'mlp:1,simple,text-direction', backend: 'mlp-v1' },
  { port: 8003, models: 'mlp:2,simple,text-direction', backend: 'mlp-v2' },
];

export const UP_HELP = `infergate up [--policy FILE] [--model-repository DIR] [--port P] [--admin-port A] [--redis URL]
             [--audit-log FILE|-] [--audit-hash] [--audit-max-bytes N]

The whole local stack on the embedded default, no Redis needed: builds the sample models into DIR
if any is missing (default models/repository), starts three backend replicas on 127.0.0.1:8001,
8002 and 8003 (mlp version 1 on the first two, version 2 on the third, simple and text-direction
on all) and a gateway on 127.0.0.1:8080 (admin 9901) with the policy (default
policies/default.yaml), then prints the URL and a curl example. Edit the policy while it runs to
shift traffic. Ctrl-C stops every process cleanly.
--redis URL runs it in fleet mode: the gateway takes its policy from Redis (seeded with the policy
when the store is empty; change it with infergate policy apply FILE --redis URL) and the replicas
register themselves (8001 and 8002 under mlp-v1, 8003 under mlp-v2).
--audit-log and its options are the gateway's (see infergate gateway --help). Tracing: the OTEL_*
variables reach every process of the stack.`;

interface Child {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly exited: Promise<number | null>;
}

export async function upCommand(argv: string[]): Promise<void> {
  const { values } = parse(argv, {
    policy: { type: 'string' },
    'model-repository': { type: 'string' },
    port: { type: 'string' },
    'admin-port': { type: 'string' },
    ...FLEET_FLAGS,
    ...AUDIT_FLAGS,
  });
  const fleet = fleetTarget(values);
  const redisUrl = setting(values.redis, 'INFERGATE_REDIS_URL');
  const prefixArgs = values['redis-prefix'] === undefined ? [] : ['--redis-prefix', values['redis-prefix']];
  const repo = resolve(
    setting(values['model-repository'], 'INFERGATE_MODEL_REPOSITORY', 'models/repository'),
  );
  const gatewayPort = port(setting(values.port, 'INFERGATE_PORT', '8080'), '--port');
  const adminPort = port(setting(values['admin-port'], 'INFERGATE_ADMIN_PORT', '9901'), '--admin-port');
  const policy = resolve(setting(values.policy, 'INFERGATE_POLICY') ?? (await defaultPolicy()));
  // The audit flags go to the gateway as given; it checks them.
  const auditArgs = [
    ...(values['audit-log'] === undefined ? [] : ['--audit-log', values['audit-log']]),
    ...(values['audit-hash'] === true ? ['--audit-hash'] : []),
    ...(values['audit-max-bytes'] === undefined ? [] : ['--audit-max-bytes', values['audit-max-bytes']]),
  ];
  const logger = createLogger({
    name: 'infergate-up',
    level: setting(undefined, 'INFERGATE_LOG_LEVEL', 'info'),
    ...logOutput(),
  });

  await access(policy).catch(() => {
    throw new Error(`policy file ${policy} not found`);
  });
  const missing = await access(repo).then(
    () => missingSampleModelFiles(repo),
    () => ['(repository)'],
  );
  if (missing.length > 0) {
    logger.info({ repo }, 'building the sample model repository');
    await buildModelRepository(repo);
  }

  const children: Child[] = [];
  let stopping = false;
  const stopAll = async (code: number) => {
    if (stopping) return;
    stopping = true;
    // The gateway first, so that the requests it holds finish on replicas that are still up.
    const gateway = children.filter((c) => c.name === 'gateway');
    const backends = children.filter((c) => c.name !== 'gateway');
    for (const group of [gateway, backends]) {
      for (const c of group)
        if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGTERM');
      await Promise.all(group.map((c) => c.exited));
    }
    process.exit(code);
  };
  process.on('SIGINT', () => void stopAll(0));
  process.on('SIGTERM', () => void stopAll(0));

  const start = (name: string, args: string[], env: Record<string, string>): Child => {
    const proc = spawn(process.execPath, [BIN, ...args], {
      // Own process group: Ctrl-C reaches only this process, which stops the children in order.
      detached: true,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, ...env },
    });
    const exited = new Promise<number | null>((res) => proc.once('exit', (code) => res(code)));
    const child = { name, proc, exited };
    children.push(child);
    void exited.then((code) => {
      if (!stopping) {
        logger.error({ child: name, code }, `${name} exited unexpectedly; stopping the stack`);
        void stopAll(1);
      }
    });
    return child;
  };

  // Replicas log warnings and errors only; the gateway also logs policy changes.
  const backendLevel = process.env.INFERGATE_LOG_LEVEL ?? 'warn';
  for (const r of UP_REPLICAS) {
    start(
      `backend:${r.port}`,
      [
        'backend',
        '--model-repository',
        repo,
        '--port',
        String(r.port),
        '--models',
        r.models,
        ...(fleet === undefined
          ? []
          : [
              '--register',
              redisUrl as string,
              '--backend',
              r.backend,
              '--advertise',
              `http://127.0.0.1:${r.port}`,
              ...prefixArgs,
            ]),
      ],
      { INFERGATE_LOG_LEVEL: backendLevel },
    );
  }
  const backendsReady = await Promise.all(
    UP_REPLICAS.map((r) => waitReady(`http://127.0.0.1:${r.port}`, children, logger)),
  );
  if (backendsReady.includes(false)) return void stopAll(1);
  start(
    'gateway',
    [
      'gateway',
      '--policy',
      policy,
      '--port',
      String(gatewayPort),
      '--admin-port',
      String(adminPort),
      ...(fleet === undefined ? [] : ['--redis', redisUrl as string, ...prefixArgs]),
      ...auditArgs,
    ],
    {
      INFERGATE_LOG_LEVEL: process.env.INFERGATE_LOG_LEVEL ?? 'info',
    },
  );
  const url = `http://127.0.0.1:${gatewayPort}`;
  if (!(await waitReady(url, children, logger))) return void stopAll(1);

  const body = JSON.stringify({
    inputs: [
      { name: 'x', shape: [1, 64], datatype: 'FP32', data: Array.from({ length: 64 }, (_, i) => i / 64) },
    ],
  });
  process.stdout.write(
    [
      '',
      `infergate is up at ${url}`,
      fleet === undefined
        ? `  gateway  ${url} (metrics: http://127.0.0.1:${adminPort}/metrics), policy ${policy}`
        : `  gateway  ${url} (metrics: http://127.0.0.1:${adminPort}/metrics), fleet mode: policy from ${fleet.target.display}`,
      ...UP_REPLICAS.map((r) => `  backend  http://127.0.0.1:${r.port}  ${r.models}`),
      '',
      'try:',
      `  curl -s ${url}/v2/models/mlp`,
      `  curl -si ${url}/v2/models/mlp/infer -H 'content-type: application/json' -d '${body}'`,
      fleet === undefined
        ? `  (x-infergate-variant in the answer says which variant served it; edit the split in ${policy} to shift traffic)`
        : `  (x-infergate-variant says which variant served it; shift traffic with: infergate policy apply FILE --redis ${fleet.target.display} --wait)`,
      '',
      'Ctrl-C stops it.',
      '',
    ].join('\n'),
  );
}

/** `policies/default.yaml` of the working directory when there is one, else the package's. */
async function defaultPolicy(): Promise<string> {
  const local = resolve('policies/default.yaml');
  return access(local).then(
    () => local,
    () => join(PACKAGE_ROOT, 'policies', 'default.yaml'),
  );
}

/** Polls `/v2/health/ready` until it answers 200, a child exits, or 60 s pass. */
async function waitReady(base: string, children: readonly Child[], logger: Logger): Promise<boolean> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (children.some((c) => c.proc.exitCode !== null || c.proc.signalCode !== null)) return false;
    try {
      const res = await fetch(`${base}/v2/health/ready`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200) return true;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  logger.error({ url: base }, 'not ready within 60 s');
  return false;
}
