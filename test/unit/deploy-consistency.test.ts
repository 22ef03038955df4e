// The deployment's pieces agree with each other and with the CLI: image names and tags (the
// package version), every infergate command line in compose and the manifests parses with the
// CLI's own option tables (GATEWAY_OPTIONS, BACKEND_OPTIONS, POLICY_OPTIONS, KEYS_OPTIONS), the
// ports a command listens on are the ones its container declares, HAProxy balances, Prometheus
// scrapes and the Dockerfile exposes, the environment variables are names the CLI reads, files
// named by flags are mounted, Redis and Jaeger addresses name real services, and the backend name
// and models the replicas register are those the policy routes to.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import path from 'node:path';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { BATCH_OPTIONS } from '../../cli/batch.js';
import { compilePolicy } from '../../gateway/policy/compile.js';
import { SAMPLE_MODELS } from '../../models/build.js';
import { REPO_ROOT } from '../helpers/backend.js';
import {
  cliEnvNames,
  DEPLOY,
  dockerStages,
  find,
  type InfergateCommand,
  NO_KUBECTL,
  loadCompose,
  type Obj,
  OVERLAYS,
  PACKAGE_VERSION,
  parseInfergate,
  podSpec,
  renderOverlay,
  WORKLOAD_KINDS,
} from '../helpers/deploy.js';

const policy = (() => {
  const r = compilePolicy(readFileSync(path.join(REPO_ROOT, 'policies/fleet.yaml'), 'utf8'));
  assert.ok(r.ok);
  return r.policy;
})();

const portOf = (url: string) => Number(new URL(url).port);
const isInfergate = (image: string) => /^infergate(-gpu)?:/.test(image);

/** EXPOSE of each Dockerfile's runtime stage. */
function exposed(file: string): Set<number> {
  const last = dockerStages(file).stages.at(-1) as { instructions: { name: string; args: string[] }[] };
  return new Set(last.instructions.filter((i) => i.name === 'EXPOSE').flatMap((i) => i.args.map(Number)));
}

/** What the replicas must serve: every model:version the policy's variants name. */
function policyModels(): Set<string> {
  const out = new Set<string>();
  for (const m of policy.models.values())
    for (const v of m.variants.values()) out.add(`${v.model}:${v.version ?? ''}`);
  return out;
}

/** A backend command covers the policy: its backend name is the policy's, its --models serve every variant. */
function checkBackendAgainstPolicy(cmd: InfergateCommand, where: string): void {
  assert.ok(policy.backends.has(cmd.values.backend as string), `${where}: --backend ${cmd.values.backend}`);
  const models = String(cmd.values.models).split(',');
  for (const entry of models) {
    const [name] = entry.split(':');
    assert.ok(
      SAMPLE_MODELS.some((m) => m.name === name),
      `${where}: --models ${name} is a sample model (the image's repository)`,
    );
  }
  for (const want of policyModels()) {
    const [name, version] = want.split(':');
    assert.ok(
      models.includes(name as string) || models.includes(`${name}:${version}`),
      `${where}: serves ${want}, which the policy routes to`,
    );
  }
}

describe('image names and tags', () => {
  test('compose builds and runs infergate:<package version>', () => {
    const compose = loadCompose();
    const images = Object.values(compose.services as Record<string, Obj>)
      .map((s) => s.image as string)
      .filter(isInfergate);
    assert.ok(images.length >= 7);
    for (const i of images) assert.equal(i, `infergate:${PACKAGE_VERSION}`);
    for (const s of Object.values(compose.services as Record<string, Obj>).filter((x) =>
      isInfergate(x.image),
    ))
      assert.deepEqual(s.build, { context: '..', dockerfile: 'Dockerfile' });
  });

  test('the overlays run infergate:<version> and, for GPU backends, infergate-gpu:<version>', {
    skip: NO_KUBECTL,
  }, () => {
    for (const overlay of OVERLAYS) {
      const images = renderOverlay(overlay)
        .filter((o) => WORKLOAD_KINDS.has(o.kind))
        .flatMap((o) => (podSpec(o).containers as Obj[]).map((c) => c.image as string))
        .filter(isInfergate);
      assert.ok(images.length >= 4, overlay);
      for (const i of images)
        assert.match(i, new RegExp(`^infergate(-gpu)?:${PACKAGE_VERSION.replace(/\./g, '\\.')}$`));
      assert.equal(images.filter((i) => i.startsWith('infergate-gpu:')).length, overlay === 'gpu' ? 1 : 0);
    }
  });
});

describe('compose: commands, ports, environment, files', () => {
  const compose = loadCompose();
  const services = compose.services as Record<string, Obj>;
  const infergate = Object.entries(services).filter(([, s]) => isInfergate(s.image));
  const commands = new Map(infergate.map(([n, s]) => [n, parseInfergate(s.command as string[])]));
  const prometheus = readFileSync(path.join(DEPLOY, 'prometheus/compose.yml'), 'utf8');
  const haproxy = readFileSync(path.join(DEPLOY, 'haproxy/haproxy.cfg'), 'utf8');
  const expose = exposed('Dockerfile');

  test('gateways: the port HAProxy balances and the admin port Prometheus scrapes; fleet mode on the redis service', () => {
    const gateways = [...commands].filter(([, c]) => c.command === 'gateway');
    assert.equal(gateways.length, 2);
    for (const [name, c] of gateways) {
      const port = Number(c.values.port);
      const admin = Number(c.values['admin-port']);
      assert.match(
        haproxy,
        new RegExp(`server ${name} ${name}:${port}\\b`),
        `haproxy balances ${name}:${port}`,
      );
      assert.ok(prometheus.includes(`"${name}:${admin}"`), `prometheus scrapes ${name}:${admin}`);
      assert.ok(expose.has(port) && expose.has(admin), `the Dockerfile exposes ${port} and ${admin}`);
      assert.equal(c.values['gateway-id'], name);
      assert.equal(c.values['admin-metrics-open'], true, 'Prometheus scrapes without the token');
      const redis = new URL(c.values.redis as string);
      assert.ok(redis.hostname in services, `${name}: Redis at a service (${redis.hostname})`);
      // Files named by flags: secrets the service mounts, the policy it mounts.
      for (const flag of ['admin-token-file', 'tls-cert', 'tls-key']) {
        const file = c.values[flag] as string;
        assert.match(file, /^\/run\/secrets\//, `${name} --${flag}`);
        assert.ok(
          ((services[name] as Obj).secrets as string[]).includes(path.basename(file)),
          `${name} mounts ${file}`,
        );
      }
      assert.ok(
        ((services[name] as Obj).volumes as string[]).includes(
          `../policies/fleet.yaml:${c.values.policy}:ro`,
        ),
        `${name} seeds from policies/fleet.yaml`,
      );
      assert.ok(
        ((services[name] as Obj).tmpfs as string[]).some((t) =>
          t.startsWith(path.dirname(c.values['policy-cache'] as string)),
        ),
        `${name}: --policy-cache on a writable tmpfs`,
      );
    }
  });

  test('backends: the port they advertise, the one Prometheus scrapes, their backend and models those of the policy', () => {
    const backends = [...commands].filter(([, c]) => c.command === 'backend');
    assert.equal(backends.length, 3);
    for (const [name, c] of backends) {
      const port = Number(c.values.port);
      const advertise = new URL(c.values.advertise as string);
      assert.equal(advertise.hostname, name, `${name} advertises its own service name`);
      assert.equal(Number(advertise.port), port);
      assert.ok(prometheus.includes(`"${name}:${port}"`), `prometheus scrapes ${name}:${port}`);
      assert.ok(expose.has(port));
      assert.ok(new URL(c.values.register as string).hostname in services);
      checkBackendAgainstPolicy(c, name);
    }
  });

  test('the one-shot services: policy apply --wait of the same file, keys from the api_key secret', () => {
    const apply = commands.get('policy') as InfergateCommand;
    assert.deepEqual(apply.positionals.slice(0, 2), ['apply', '/etc/infergate/policy.yaml']);
    assert.equal(apply.values.wait, true);
    assert.ok(
      ((services.policy as Obj).volumes as string[]).includes(
        '../policies/fleet.yaml:/etc/infergate/policy.yaml:ro',
      ),
    );
    for (const g of ['gateway-1', 'gateway-2'])
      assert.equal(
        (services.policy as Obj).depends_on[g]?.condition,
        'service_healthy',
        `policy waits for ${g}`,
      );
    const keys = commands.get('keys') as InfergateCommand;
    assert.deepEqual(keys.positionals, ['create']);
    assert.equal(keys.values['key-file'], '/run/secrets/api_key');
    assert.ok(((services.keys as Obj).secrets as string[]).includes('api_key'));
  });

  test('environment: names the CLI reads, tracing to the jaeger service', () => {
    const names = cliEnvNames();
    for (const [name, s] of infergate) {
      const env = (s.environment ?? {}) as Record<string, string>;
      for (const k of Object.keys(env)) assert.ok(names.has(k), `${name}: ${k} is read by the CLI`);
      if (!/^(gateway|backend)-/.test(name)) continue;
      const otlp = new URL(env.OTEL_EXPORTER_OTLP_ENDPOINT as string);
      assert.ok(otlp.hostname in services, `${name}: OTLP to a service`);
      assert.equal(otlp.port, '4318');
    }
    const env = Object.assign(
      {},
      ...(dockerStages('Dockerfile').stages.at(-1)?.instructions ?? [])
        .filter((i) => i.name === 'ENV')
        .map((i) => i.args),
    ) as Record<string, string>;
    for (const k of Object.keys(env).filter((k) => k.startsWith('INFERGATE_')))
      assert.ok(names.has(k), `Dockerfile ENV ${k} is read by the CLI`);
  });

  test('Grafana gets the dashboard and a Prometheus data source of the type its variable asks for', () => {
    const grafana = services.grafana as Obj;
    assert.ok(
      (grafana.volumes as string[]).includes(
        './grafana/infergate.json:/var/lib/grafana/dashboards/infergate.json:ro',
      ),
    );
    const provider = readFileSync(
      path.join(DEPLOY, 'grafana/provisioning/dashboards/infergate.yaml'),
      'utf8',
    );
    assert.match(provider, /path: \/var\/lib\/grafana\/dashboards/);
    const source = readFileSync(
      path.join(DEPLOY, 'grafana/provisioning/datasources/prometheus.yaml'),
      'utf8',
    );
    assert.match(source, /type: prometheus/);
    assert.match(source, /url: http:\/\/prometheus:9090/);
    const dashboard = JSON.parse(readFileSync(path.join(DEPLOY, 'grafana/infergate.json'), 'utf8')) as Obj;
    const variable = (dashboard.templating.list as Obj[]).find((v) => v.type === 'datasource');
    assert.equal(variable?.query, 'prometheus');
  });
});

describe('Kubernetes: commands, ports, environment, files', { skip: NO_KUBECTL }, () => {
  for (const overlay of OVERLAYS) {
    test(`overlays/${overlay}: every infergate container's command parses with the CLI's options, its ports agree`, () => {
      const objects = renderOverlay(overlay);
      const names = cliEnvNames();
      const services = new Map(
        objects.filter((o) => o.kind === 'Service').map((s) => [s.metadata.name as string, s]),
      );
      const expose = new Set([...exposed('Dockerfile'), ...exposed('Dockerfile.gpu')]);
      let seen = 0;
      for (const o of objects.filter((x) => WORKLOAD_KINDS.has(x.kind))) {
        for (const c of podSpec(o).containers as Obj[]) {
          if (!isInfergate(c.image)) continue;
          seen += 1;
          const where = `${o.metadata.name}/${c.name}`;
          const cmd = parseInfergate(c.args as string[]);
          const ports = new Map(((c.ports as Obj[] | undefined) ?? []).map((p) => [p.name, p.containerPort]));
          const env = new Map(((c.env as Obj[] | undefined) ?? []).map((e) => [e.name as string, e]));
          for (const k of env.keys())
            assert.ok(
              names.has(k) || k === 'POD_NAME' || k === 'POD_IP',
              `${where}: ${k} is read by the CLI`,
            );
          // $(VAR) in args names a variable of the container.
          for (const a of c.args as string[])
            for (const m of a.matchAll(/\$\((\w+)\)/g))
              assert.ok(env.has(m[1] as string), `${where}: $(${m[1]})`);
          // Files named by flags live under a mount.
          const mounts = ((c.volumeMounts as Obj[] | undefined) ?? []).map((m) => m.mountPath as string);
          for (const [flag, value] of Object.entries(cmd.values)) {
            if (typeof value === 'string' && value.startsWith('/') && flag !== 'advertise')
              assert.ok(
                mounts.some((m) => value.startsWith(`${m}/`)),
                `${where}: --${flag} ${value} is mounted`,
              );
          }
          const redisUrl = (
            cmd.command === 'backend' ? env.get('INFERGATE_REGISTER') : env.get('INFERGATE_REDIS_URL')
          )?.value as string;
          const redis = new URL(redisUrl);
          assert.equal(
            services.get(redis.hostname)?.spec.ports[0].port,
            Number(redis.port),
            `${where}: Redis`,
          );
          const annotations = (o.spec.template.metadata.annotations ?? {}) as Record<string, string>;
          if (cmd.command === 'gateway') {
            assert.equal(ports.get('https'), Number(cmd.values.port), `${where}: --port is the https port`);
            assert.equal(ports.get('admin'), Number(cmd.values['admin-port']));
            assert.equal(
              annotations['prometheus.io/port'],
              String(cmd.values['admin-port']),
              'scraped on the admin port',
            );
            assert.equal(cmd.values['admin-metrics-open'], true);
            assert.ok(expose.has(Number(cmd.values.port)) && expose.has(Number(cmd.values['admin-port'])));
          }
          if (cmd.command === 'backend') {
            assert.equal(ports.get('http'), Number(cmd.values.port), `${where}: --port is the http port`);
            assert.equal(
              portOf((cmd.values.advertise as string).replace('$(POD_IP)', '10.0.0.1')),
              Number(cmd.values.port),
            );
            assert.equal(annotations['prometheus.io/port'], String(cmd.values.port));
            assert.ok(expose.has(Number(cmd.values.port)));
            assert.ok(env.has('INFERGATE_REGISTER'), 'the replica registers itself');
            checkBackendAgainstPolicy(cmd, where);
          }
          if (env.has('OTEL_EXPORTER_OTLP_ENDPOINT')) {
            const otlp = new URL(env.get('OTEL_EXPORTER_OTLP_ENDPOINT')?.value as string);
            const svc = services.get(otlp.hostname);
            assert.ok(
              svc?.spec.ports.some((p: Obj) => p.port === Number(otlp.port)),
              `${where}: OTLP to a service port`,
            );
          }
        }
      }
      assert.equal(seen, 4, 'gateway, backend, the policy Job and the key Job');
      const job = find(objects, 'Job', 'infergate-policy-apply');
      const apply = parseInfergate((podSpec(job).containers as Obj[])[0]?.args as string[]);
      assert.equal(apply.values.wait, true);
      const gateway = find(objects, 'Deployment', 'infergate-gateway');
      const seed = parseInfergate((podSpec(gateway).containers as Obj[])[0]?.args as string[]).values.policy;
      assert.equal(apply.positionals[1], seed, 'the Job applies the file the gateways seed from');
    });
  }
});

describe('Kubernetes: the batch Job (deploy/k8s/batch/job.yaml)', { skip: NO_KUBECTL }, () => {
  const job = parse(readFileSync(path.join(DEPLOY, 'k8s/batch/job.yaml'), 'utf8')) as Obj;
  const container = (podSpec(job).containers as Obj[])[0] as Obj;

  test('passes the Kubernetes schema; runs in the stack namespace, as the image user, with the stack image', async () => {
    const { Job } = (await import('kubernetes-models/batch/v1/Job')) as {
      Job: new (d: Obj) => { validate(): void };
    };
    assert.doesNotThrow(() => new Job(job).validate());
    const gateway = find(renderOverlay('cpu'), 'Deployment', 'infergate-gateway');
    assert.equal(job.metadata.namespace, gateway.metadata.namespace);
    assert.equal(container.image, (podSpec(gateway).containers as Obj[])[0]?.image);
    const user = dockerStages('Dockerfile')
      .stages.at(-1)
      ?.instructions.find((i) => i.name === 'USER')?.args;
    // docker-file-parser gives USER's argument as a string (or a one-item list).
    const userSpec = Array.isArray(user) ? user.join('') : String(user);
    assert.equal(
      `${podSpec(job).securityContext.runAsUser}:${podSpec(job).securityContext.runAsGroup}`,
      userSpec,
    );
    assert.equal(container.securityContext.readOnlyRootFilesystem, true);
  });

  test('its command parses with the batch options; one shard per index; the URL is the gateways’ Service', () => {
    const [command, ...rest] = container.args as string[];
    assert.equal(command, 'batch');
    const { values } = parseArgs({
      args: rest,
      options: BATCH_OPTIONS,
      strict: true,
      allowPositionals: false,
    });
    assert.equal(values.shard, `$(JOB_COMPLETION_INDEX)/${job.spec.completions}`);
    assert.equal(job.spec.completionMode, 'Indexed');
    assert.match(String(values.output), /\$\(JOB_COMPLETION_INDEX\)/, 'an output file per shard');
    const url = new URL(String(values.url));
    const service = find(renderOverlay('cpu'), 'Service', 'infergate-gateway');
    assert.equal(url.hostname, `${service.metadata.name}.${service.metadata.namespace}.svc`);
    const port = url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port);
    assert.ok(
      (service.spec.ports as Obj[]).some((p) => p.port === port),
      `the Service listens on ${port}`,
    );
  });

  test('its secrets are those create-secrets.sh makes, and the CA is trusted over TLS', () => {
    const script = readFileSync(path.join(DEPLOY, 'k8s/create-secrets.sh'), 'utf8');
    const env = new Map((container.env as Obj[]).map((e) => [e.name as string, e]));
    const key = env.get('INFERGATE_API_KEY')?.valueFrom?.secretKeyRef as Obj;
    assert.match(script, new RegExp(`secret generic ${key.name} --from-file=${key.key}=`));
    const volumes = podSpec(job).volumes as Obj[];
    const ca = volumes.find((v) => v.secret !== undefined) as Obj;
    assert.match(script, new RegExp(`secret generic ${ca.secret.secretName} --from-file=ca\\.crt=`));
    const mount = (container.volumeMounts as Obj[]).find((m) => m.name === ca.name) as Obj;
    assert.equal(env.get('NODE_EXTRA_CA_CERTS')?.value, `${mount.mountPath}/ca.crt`);
  });
});
