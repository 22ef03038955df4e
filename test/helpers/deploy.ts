// What the deployment tests read: the compose file, the Kubernetes overlays rendered by
// `kubectl kustomize`, the infergate commands their containers run (parsed with the CLI's own
// option tables), and the Dockerfiles (docker-file-parser).
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import parser from 'docker-file-parser';
import { parse, parseAllDocuments } from 'yaml';
import { BACKEND_OPTIONS } from '../../cli/backend.js';
import { GATEWAY_OPTIONS } from '../../cli/gateway.js';
import { KEYS_OPTIONS } from '../../cli/keys.js';
import { POLICY_OPTIONS } from '../../cli/policy.js';
import { REPO_ROOT } from './backend.js';

export const DEPLOY = path.join(REPO_ROOT, 'deploy');

/** A port of 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
export const K8S = path.join(DEPLOY, 'k8s');
export const OVERLAYS = ['cpu', 'gpu'] as const;
export type Overlay = (typeof OVERLAYS)[number];

export const PACKAGE_VERSION = (
  JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }
).version;

// biome-ignore lint/suspicious/noExplicitAny: manifests are free-form YAML, checked field by field
export type Obj = Record<string, any>;

/** Every file under `dir` (recursively) whose name ends with one of `exts`. */
export function filesUnder(dir: string, exts: readonly string[]): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...filesUnder(full, exts));
    else if (exts.some((e) => entry.name.endsWith(e))) out.push(full);
  }
  return out.sort();
}

export function loadCompose(): Obj {
  return parse(readFileSync(path.join(DEPLOY, 'compose.yaml'), 'utf8'), { merge: true }) as Obj;
}

export const KUBECTL = spawnSync('sh', ['-c', 'command -v kubectl'], { encoding: 'utf8' }).stdout.trim();

/** A test's skip reason where kubectl is missing, else false. */
export const NO_KUBECTL =
  KUBECTL === '' ? 'kubectl is not installed: the overlays cannot be rendered here' : false;

const rendered = new Map<Overlay, Obj[]>();

/** `kubectl kustomize deploy/k8s/overlays/NAME`, parsed (once per overlay). */
export function renderOverlay(overlay: Overlay): Obj[] {
  const cached = rendered.get(overlay);
  if (cached !== undefined) return cached;
  const text = execFileSync(KUBECTL, ['kustomize', path.join(K8S, 'overlays', overlay)], {
    encoding: 'utf8',
    maxBuffer: 16 * 1024 * 1024,
  });
  const objects = parseAllDocuments(text)
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => o !== null);
  rendered.set(overlay, objects);
  return objects;
}

export const WORKLOAD_KINDS = new Set(['Deployment', 'StatefulSet', 'Job']);

export function podSpec(o: Obj): Obj {
  return o.spec.template.spec as Obj;
}

export function find(objects: Obj[], kind: string, name: string): Obj {
  const o = objects.find((x) => x.kind === kind && x.metadata?.name === name);
  if (o === undefined) throw new Error(`no ${kind} ${name}`);
  return o;
}

/** The option table of each infergate command a deployment runs. */
export const OPTION_TABLES = {
  gateway: GATEWAY_OPTIONS,
  backend: BACKEND_OPTIONS,
  policy: POLICY_OPTIONS,
  keys: KEYS_OPTIONS,
} as const;

export interface InfergateCommand {
  readonly command: keyof typeof OPTION_TABLES;
  readonly positionals: string[];
  readonly values: Record<string, string | boolean | undefined>;
}

/**
 * An infergate command line (what follows the image's entrypoint), parsed strictly with the CLI's
 * own option table: an unknown flag, or a flag without its value, throws.
 */
export function parseInfergate(args: readonly string[]): InfergateCommand {
  const [command, ...rest] = args;
  if (command === undefined || !(command in OPTION_TABLES))
    throw new Error(`not an infergate command: ${command}`);
  const name = command as keyof typeof OPTION_TABLES;
  const { values, positionals } = parseArgs({
    args: [...rest],
    options: OPTION_TABLES[name],
    strict: true,
    allowPositionals: true,
  });
  return { command: name, positionals, values: values as InfergateCommand['values'] };
}

/**
 * The env var names the CLI reads: in cli/, each INFERGATE_* or OTEL_* name given to `setting()`
 * as a string, or read as `env.NAME` (the OpenTelemetry variables).
 */
export function cliEnvNames(): Set<string> {
  const names = new Set<string>();
  for (const file of filesUnder(path.join(REPO_ROOT, 'cli'), ['.ts'])) {
    for (const m of readFileSync(file, 'utf8').matchAll(/(?:'|\benv\.)((?:INFERGATE|OTEL)_[A-Z0-9_]+)\b/g))
      names.add(m[1] as string);
  }
  return names;
}

export interface DockerInstruction {
  readonly name: string;
  // biome-ignore lint/suspicious/noExplicitAny: docker-file-parser gives strings, arrays or maps by instruction
  readonly args: any;
  readonly raw: string;
  readonly lineno: number;
}

export interface DockerStage {
  readonly from: string;
  readonly name: string | undefined;
  readonly instructions: DockerInstruction[];
}

/** A Dockerfile's stages (FROM with its ARG defaults substituted), each with its instructions. */
export function dockerStages(file: string): { args: Map<string, string>; stages: DockerStage[] } {
  const commands = parser.parse(readFileSync(path.join(REPO_ROOT, file), 'utf8'), {
    includeComments: false,
  }) as DockerInstruction[];
  const args = new Map<string, string>();
  const stages: DockerStage[] = [];
  for (const c of commands) {
    if (c.name === 'ARG' && stages.length === 0) {
      const text = String(Array.isArray(c.args) ? c.args[0] : c.args);
      const eq = text.indexOf('=');
      if (eq > 0) args.set(text.slice(0, eq), text.slice(eq + 1));
      continue;
    }
    if (c.name === 'FROM') {
      const parts = String(Array.isArray(c.args) ? c.args.join(' ') : c.args).split(/\s+/);
      const from = (parts[0] as string).replace(/\$\{(\w+)\}/g, (_, k: string) => args.get(k) ?? `\${${k}}`);
      const as = parts.findIndex((p) => p.toUpperCase() === 'AS');
      stages.push({ from, name: as === -1 ? undefined : parts[as + 1], instructions: [] });
      continue;
    }
    stages.at(-1)?.instructions.push(c);
  }
  return { args, stages };
}
