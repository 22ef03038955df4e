// The configurations the deployments hand to other programs, checked by those programs where
// they are installed (.ci/run installs both): HAProxy's (`haproxy -c`) and Prometheus' for
// compose and for Kubernetes (`promtool check config`), the latter taken out of its ConfigMap.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { PROMTOOL, REPO_ROOT, removeTempDirs, tempDir } from '../helpers/backend.js';
import { DEPLOY, find, KUBECTL, renderOverlay } from '../helpers/deploy.js';

after(removeTempDirs);

const HAPROXY = spawnSync('sh', ['-c', 'command -v haproxy'], { encoding: 'utf8' }).stdout.trim();
const noHaproxy = HAPROXY === '' ? 'haproxy is not installed (apt-get install haproxy)' : false;
const noPromtool = PROMTOOL === '' ? 'promtool is not installed (apt-get install prometheus)' : false;
const noKubectl = KUBECTL === '' ? 'kubectl is not installed' : false;

describe('configurations checked by their own programs', () => {
  test('deploy/haproxy/haproxy.cfg: haproxy -c', { skip: noHaproxy }, () => {
    const r = spawnSync(HAPROXY, ['-c', '-f', path.join(DEPLOY, 'haproxy/haproxy.cfg')], {
      encoding: 'utf8',
    });
    const output = r.stdout + r.stderr;
    assert.equal(r.status, 0, output);
    assert.match(output, /Configuration file is valid/);
    // The only warnings allowed: the gateways' names, which resolve inside compose's network only.
    for (const line of output.split('\n').filter((l) => l.includes('[WARNING]')))
      assert.match(line, /could not resolve address 'gateway-\d'/, line);
  });

  test('deploy/prometheus/compose.yml: promtool check config', { skip: noPromtool }, () => {
    const r = spawnSync(PROMTOOL, ['check', 'config', path.join(DEPLOY, 'prometheus/compose.yml')], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stdout + r.stderr);
  });

  test('the Kubernetes Prometheus (its ConfigMap): promtool check config', {
    skip: noPromtool || noKubectl,
  }, async () => {
    const cm = find(renderOverlay('cpu'), 'ConfigMap', 'infergate-prometheus');
    const dir = await tempDir('infergate-prom-');
    const file = path.join(dir, 'prometheus.yml');
    const config = cm.data['prometheus.yml'] as string;
    writeFileSync(file, config);
    let r = spawnSync(PROMTOOL, ['check', 'config', file], { encoding: 'utf8', cwd: REPO_ROOT });
    if (r.status !== 0 && /field kubernetes_sd_configs not found/.test(r.stdout + r.stderr)) {
      // Debian builds Prometheus without Kubernetes discovery (the prom/prometheus image has it):
      // check everything else, with static targets in its place.
      process.stderr.write(
        '# this promtool has no kubernetes_sd_configs: checked with static targets instead\n',
      );
      const replaced = config.replace(
        /kubernetes_sd_configs:\n\s+- role: pod\n\s+namespaces: \{ names: \[infergate\] \}/,
        "static_configs:\n          - targets: ['127.0.0.1:9']",
      );
      assert.notEqual(replaced, config, 'the discovery block was found and replaced');
      writeFileSync(file, replaced);
      r = spawnSync(PROMTOOL, ['check', 'config', file], { encoding: 'utf8', cwd: REPO_ROOT });
    }
    assert.equal(r.status, 0, r.stdout + r.stderr);
  });
});
