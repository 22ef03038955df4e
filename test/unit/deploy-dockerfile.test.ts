// The Dockerfiles, read with a Dockerfile parser (docker-file-parser): multi-stage, pinned base
// images (no `latest`), a non-root numeric USER, `infergate` as the exec-form ENTRYPOINT, a
// HEALTHCHECK with the node script, every COPY source present and not excluded by .dockerignore,
// and onnxruntime-node's CUDA download skipped (.npmrc copied before `npm ci`), the GPU image
// opting in with the one documented command. Then, with no container runtime needed, the
// runtime stage's layout assembled as its COPY lines say (dist/ from `npm run build`, the sample
// models, no TypeScript sources) and run: `infergate --version`, a backend replica that serves
// and passes the image's health check, the policy check; and the health check and the
// onnxruntime pruning script on their own.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { REPO_ROOT, removeTempDirs, tempDir } from '../helpers/backend.js';
import {
  type DockerInstruction,
  type DockerStage,
  dockerStages,
  freePort,
  PACKAGE_VERSION,
} from '../helpers/deploy.js';

after(removeTempDirs);

const DOCKERFILES = ['Dockerfile', 'Dockerfile.gpu'] as const;
const ENTRYPOINT = ['node', '/app/bin/infergate.js'];

const text = (i: DockerInstruction): string => (Array.isArray(i.args) ? i.args.join(' ') : String(i.args));
const of = (stage: DockerStage, name: string) => stage.instructions.filter((i) => i.name === name);
const runtime = (file: string): DockerStage => {
  const stages = dockerStages(file).stages;
  return stages.at(-1) as DockerStage;
};
/** COPY's sources (without --from=, --chown= and the like) and its destination. */
function copyParts(i: DockerInstruction): { from: string | undefined; sources: string[]; dest: string } {
  const parts = (i.args as string[]).slice();
  const from = parts.find((p) => p.startsWith('--from='))?.slice('--from='.length);
  const plain = parts.filter((p) => !p.startsWith('--'));
  return { from, sources: plain.slice(0, -1), dest: plain.at(-1) as string };
}

/** .dockerignore as patterns: whether `rel` is excluded from the build context. */
function dockerIgnored(rel: string): boolean {
  const lines = readFileSync(path.join(REPO_ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  let ignored = false;
  for (const line of lines) {
    const negate = line.startsWith('!');
    const pattern = negate ? line.slice(1) : line;
    const re = new RegExp(
      `^${pattern
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*/g, '[^/]*')
        .replace(/\?/g, '[^/]')}(/.*)?$`,
    );
    if (re.test(rel)) ignored = !negate;
  }
  return ignored;
}

describe('the Dockerfiles', () => {
  for (const file of DOCKERFILES) {
    describe(file, () => {
      const { stages } = dockerStages(file);
      const last = runtime(file);

      test('multi-stage: named stages, and the runtime stage copies from the build stages', () => {
        assert.ok(stages.length >= 3, `${stages.length} stages`);
        for (const s of stages) assert.ok(s.name, `every stage is named (FROM ${s.from})`);
        const froms = of(last, 'COPY')
          .map((c) => copyParts(c).from)
          .filter((f) => f !== undefined);
        assert.ok(froms.includes('build'), 'dist/ and the models come from the build stage');
        assert.ok(froms.includes('prod-deps'), 'node_modules come from the production-only install');
        // Nothing of the full install (dev dependencies) reaches the runtime stage.
        assert.ok(!froms.includes('deps'));
      });

      test('base images are pinned: a tag on every FROM, never latest', () => {
        const names = new Set(stages.map((s) => s.name));
        for (const s of stages) {
          if (names.has(s.from)) continue; // an earlier stage
          assert.doesNotMatch(s.from, /\$\{/, `${s.from}: every ARG has a default`);
          const tag = s.from.split('/').at(-1)?.split(':')[1];
          assert.ok(tag !== undefined && tag !== '', `${s.from} has a tag`);
          assert.notEqual(tag, 'latest', s.from);
        }
      });

      test('the runtime stage runs as a non-root numeric user', () => {
        const users = of(last, 'USER');
        assert.equal(users.length, 1);
        const [uid, gid] = text(users[0] as DockerInstruction).split(':');
        assert.match(uid as string, /^[1-9]\d*$/, 'a number, so that runAsNonRoot can check it');
        assert.match(gid as string, /^[1-9]\d*$/);
        // USER comes after every COPY and RUN: the files are root's, read-only to the process.
        const names = last.instructions.map((i) => i.name);
        assert.ok(names.lastIndexOf('COPY') < names.indexOf('USER'));
        assert.ok(!names.slice(names.indexOf('USER')).includes('RUN'));
      });

      test('ENTRYPOINT is infergate (exec form); HEALTHCHECK runs the node script', () => {
        const entry = of(last, 'ENTRYPOINT');
        assert.equal(entry.length, 1);
        assert.deepEqual((entry[0] as DockerInstruction).args, ENTRYPOINT);
        const health = of(last, 'HEALTHCHECK');
        assert.equal(health.length, 1);
        const h = text(health[0] as DockerInstruction);
        assert.match(h, /CMD \["node", "\/app\/deploy\/healthcheck\.mjs"\]/);
        assert.match(h, /--interval=\d+s/);
        assert.match(h, /--timeout=\d+s/);
        assert.ok(
          of(last, 'COPY').some((c) => copyParts(c).sources.includes('deploy/healthcheck.mjs')),
          'the script is copied in',
        );
        assert.ok(!/curl|wget/.test(readFileSync(path.join(REPO_ROOT, file), 'utf8')), 'no curl or wget');
      });

      test('every COPY source is in the repository and in the build context', () => {
        for (const s of stages) {
          for (const c of of(s, 'COPY')) {
            const { from, sources } = copyParts(c);
            if (from !== undefined) continue;
            for (const src of sources) {
              assert.ok(existsSync(path.join(REPO_ROOT, src)), `${file}:${c.lineno} ${src} exists`);
              assert.ok(!dockerIgnored(src), `${file}:${c.lineno} ${src} is not in .dockerignore`);
            }
          }
        }
        assert.ok(dockerIgnored('node_modules') && dockerIgnored('deploy/secrets/admin.token'));
        assert.ok(dockerIgnored('.git') && dockerIgnored('dist'));
      });

      test("npm ci skips onnxruntime-node's CUDA download: .npmrc is copied first, the script told to skip", () => {
        for (const s of stages) {
          const names = s.instructions.map((i) => i.name);
          const ci = s.instructions.findIndex((i) => i.name === 'RUN' && /npm ci\b/.test(text(i)));
          if (ci === -1) continue;
          const npmrc = s.instructions.findIndex(
            (i) => i.name === 'COPY' && copyParts(i).sources.includes('.npmrc'),
          );
          assert.ok(npmrc !== -1 && npmrc < ci, `stage ${s.name}: .npmrc before npm ci (${names.join(' ')})`);
          const skip =
            of(s, 'ENV').some((e) => e.args.ONNXRUNTIME_NODE_INSTALL === 'skip') ||
            /ONNXRUNTIME_NODE_INSTALL=skip npm ci/.test(text(s.instructions[ci] as DockerInstruction));
          assert.ok(skip, `stage ${s.name}: ONNXRUNTIME_NODE_INSTALL=skip`);
          assert.ok(
            !/--ignore-scripts=false|--foreground-scripts/.test(
              text(s.instructions[ci] as DockerInstruction),
            ),
          );
        }
        const npmrc = readFileSync(path.join(REPO_ROOT, '.npmrc'), 'utf8');
        assert.match(npmrc, /^ignore-scripts=true$/m);
        assert.doesNotMatch(npmrc, /^onnxruntime-node-install/m, 'no setting npm does not know');
      });

      test('the build stage builds dist/ and the sample models; the runtime has them, not the sources', () => {
        const build = stages.find((s) => s.name === 'build') as DockerStage;
        const runs = of(build, 'RUN').map(text).join('\n');
        assert.match(runs, /npm run build/);
        assert.match(runs, /node bin\/infergate\.js models build \/src\/models\/repository/);
        const copies = of(last, 'COPY').map(copyParts);
        const dests = copies.map((c) => c.dest);
        for (const d of ['./node_modules', './dist', './bin', './models/repository', './package.json'])
          assert.ok(
            dests.includes(d) || copies.some((c) => c.dest === './' && c.sources.includes(d.slice(2))),
            `runtime gets ${d}`,
          );
        for (const src of ['cli', 'gateway', 'backend', 'common'])
          assert.ok(!copies.some((c) => c.sources.includes(src)), `no ${src}/ sources in the runtime`);
        const env = Object.assign({}, ...of(last, 'ENV').map((e) => e.args)) as Record<string, string>;
        assert.equal(env.INFERGATE_MODEL_REPOSITORY, '/app/models/repository');
        assert.equal(env.INFERGATE_HOST, '0.0.0.0');
        assert.equal(env.NODE_ENV, 'production');
      });
    });
  }

  test('Dockerfile.gpu: a CUDA runtime base, the CUDA provider opted in by one command, --device cuda', () => {
    const last = runtime('Dockerfile.gpu');
    assert.match(last.from, /^nvidia\/cuda:12\.[\d.]+-cudnn-runtime-/);
    const all = dockerStages('Dockerfile.gpu').stages.flatMap((s) => of(s, 'RUN').map(text));
    assert.ok(
      all.some((r) =>
        r.includes('ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js'),
      ),
      'the documented opt-in, run by node (not npm run, under which the script skips a local install)',
    );
    assert.ok(
      all.some((r) => r.includes('libonnxruntime_providers_cuda.so')),
      'and checked',
    );
    assert.deepEqual(of(last, 'CMD')[0]?.args, ['backend', '--device', 'cuda']);
    const env = Object.assign({}, ...of(last, 'ENV').map((e) => e.args)) as Record<string, string>;
    assert.equal(env.INFERGATE_DEVICE, 'cuda');
    // The opt-in command of the Dockerfile is the one the README documents.
    const readme = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
    assert.ok(
      readme.includes('ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js'),
    );
  });

  test("the image tag in the Dockerfiles' usage lines is the package version", () => {
    for (const file of DOCKERFILES) {
      const body = readFileSync(path.join(REPO_ROOT, file), 'utf8');
      const tags = [...body.matchAll(/infergate(?:-gpu)?:(\d+\.\d+\.\d+)/g)].map((m) => m[1]);
      assert.ok(tags.length > 0, file);
      for (const t of tags) assert.equal(t, PACKAGE_VERSION, file);
    }
  });
});

describe('deploy/healthcheck.mjs', () => {
  const SCRIPT = path.join(REPO_ROOT, 'deploy', 'healthcheck.mjs');
  const run = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, [SCRIPT, ...args], {
        env: { PATH: process.env.PATH, ...env },
        stdio: 'ignore',
      });
      child.on('exit', (code) => resolve(code));
    });

  test('exit 0 on 200, 1 on 503 or nothing listening; the URL from argv or INFERGATE_HEALTH_URL', async () => {
    let status = 200;
    const server = http.createServer((req, res) => {
      res.statusCode = req.url === '/v2/health/ready' ? status : 404;
      res.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    try {
      const url = `http://127.0.0.1:${port}/v2/health/ready`;
      assert.equal(await run([url]), 0);
      assert.equal(await run([], { INFERGATE_HEALTH_URL: url }), 0);
      status = 503;
      assert.equal(await run([url]), 1);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
    assert.equal(await run([`http://127.0.0.1:${port}/v2/health/ready`]), 1);
  });
});

describe('deploy/prune-onnxruntime.mjs', () => {
  test("keeps this platform's binaries only, and fails when they are missing", async () => {
    const dir = await tempDir('infergate-prune-');
    const bin = path.join(dir, 'onnxruntime-node', 'bin', 'napi-v6');
    for (const p of [
      `${process.platform}/${process.arch}`,
      `${process.platform}/other`,
      'win32/x64',
      'darwin/arm64',
    ]) {
      mkdirSync(path.join(bin, p), { recursive: true });
      writeFileSync(path.join(bin, p, 'onnxruntime_binding.node'), '');
    }
    const script = path.join(REPO_ROOT, 'deploy', 'prune-onnxruntime.mjs');
    const ok = spawnSync(process.execPath, [script, dir], { encoding: 'utf8' });
    assert.equal(ok.status, 0, ok.stderr);
    assert.ok(existsSync(path.join(bin, process.platform, process.arch, 'onnxruntime_binding.node')));
    for (const gone of [`${process.platform}/other`, 'win32', 'darwin'])
      assert.ok(!existsSync(path.join(bin, gone)), `${gone} removed`);
    const empty = await tempDir('infergate-prune-');
    mkdirSync(path.join(empty, 'onnxruntime-node', 'bin', 'napi-v6'), { recursive: true });
    const missing = spawnSync(process.execPath, [script, empty], { encoding: 'utf8' });
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /onnxruntime_binding\.node is missing/);
  });
});

describe("the runtime stage's layout, assembled from its COPY lines (no container runtime needed)", () => {
  let app = '';
  const children: ChildProcess[] = [];
  after(() => {
    for (const c of children) c.kill('SIGKILL');
  });

  const infergate = (args: string[], env: NodeJS.ProcessEnv) =>
    spawn(process.execPath, [path.join(app, 'bin', 'infergate.js'), ...args], {
      cwd: app,
      env: { PATH: process.env.PATH, HOME: app, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });

  test('runs from dist/ with no TypeScript sources: --version, a replica that serves, the health check', async () => {
    const root = await tempDir('infergate-image-');
    app = path.join(root, 'app');
    mkdirSync(app);
    const stage = runtime('Dockerfile');
    const env = Object.assign({}, ...of(stage, 'ENV').map((e) => e.args)) as Record<string, string>;
    for (const c of of(stage, 'COPY')) {
      const { from, sources, dest } = copyParts(c);
      const target = path.join(app, dest);
      if (from === 'prod-deps') {
        symlinkSync(path.join(REPO_ROOT, 'node_modules'), target); // the full install stands in
      } else if (from === 'build' && sources[0] === '/src/dist') {
        const tsc = spawnSync(
          process.execPath,
          [
            path.join(REPO_ROOT, 'node_modules/typescript/bin/tsc'),
            '-p',
            'tsconfig.build.json',
            '--outDir',
            target,
          ],
          { cwd: REPO_ROOT, encoding: 'utf8' },
        );
        assert.equal(tsc.status, 0, tsc.stdout + tsc.stderr);
      } else if (from === 'build' && sources[0] === '/src/models/repository') {
        const built = spawnSync(process.execPath, ['bin/infergate.js', 'models', 'build', target], {
          cwd: REPO_ROOT,
          encoding: 'utf8',
        });
        assert.equal(built.status, 0, built.stderr);
      } else {
        assert.equal(from, undefined, `a COPY --from=${from} this test does not know`);
        for (const src of sources)
          cpSync(
            path.join(REPO_ROOT, src),
            dest.endsWith('/') ? path.join(target, path.basename(src)) : target,
            {
              recursive: true,
            },
          );
      }
    }
    assert.ok(!existsSync(path.join(app, 'cli')), 'no sources in the image');
    const runEnv = {
      ...env,
      INFERGATE_MODEL_REPOSITORY: path.join(app, 'models/repository'),
      INFERGATE_LOG_LEVEL: 'warn',
    };

    const version = spawnSync(process.execPath, [path.join(app, 'bin/infergate.js'), '--version'], {
      cwd: app,
      encoding: 'utf8',
    });
    assert.equal(version.status, 0, version.stderr);
    assert.equal(version.stdout.trim(), PACKAGE_VERSION);
    const validate = spawnSync(
      process.execPath,
      [path.join(app, 'bin/infergate.js'), 'policy', 'validate', path.join(app, 'policies/fleet.yaml')],
      { cwd: app, encoding: 'utf8' },
    );
    assert.equal(validate.status, 0, validate.stderr);

    const port = await freePort();
    const backend = infergate(
      ['backend', '--host', '127.0.0.1', '--port', String(port), '--models', 'mlp,simple'],
      runEnv,
    );
    children.push(backend);
    let stderr = '';
    backend.stderr?.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    const ready = `http://127.0.0.1:${port}/v2/health/ready`;
    const deadline = Date.now() + 60_000;
    for (;;) {
      const ok = await fetch(ready).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok) break;
      assert.ok(
        Date.now() < deadline && backend.exitCode === null,
        `the replica did not get ready: ${stderr}`,
      );
      await new Promise((r) => setTimeout(r, 200));
    }
    const answer = await fetch(`http://127.0.0.1:${port}/v2/models/simple/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        inputs: [
          {
            name: 'INPUT0',
            datatype: 'INT32',
            shape: [1, 16],
            data: Array.from({ length: 16 }, (_, i) => i),
          },
          { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], data: Array.from({ length: 16 }, () => 1) },
        ],
      }),
    });
    assert.equal(answer.status, 200);
    const body = (await answer.json()) as { outputs: { name: string; data: number[] }[] };
    assert.deepEqual(body.outputs.find((o) => o.name === 'OUTPUT0')?.data.slice(0, 3), [1, 2, 3]);
    const health = spawnSync(process.execPath, [path.join(app, 'deploy/healthcheck.mjs'), ready], {
      encoding: 'utf8',
    });
    assert.equal(health.status, 0, health.stderr);
    const exited = new Promise<number | null>((r) => backend.on('exit', (code) => r(code)));
    backend.kill('SIGTERM');
    assert.equal(await exited, 0, 'drains and exits 0 on SIGTERM');
  });
});
