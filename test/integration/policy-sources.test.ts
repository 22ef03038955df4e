// One suite, two policy sources: the file source and the Redis source must behave alike for the
// gateway: the first read, a later change delivered, a bad policy refused (and reported) while
// the last good one serves.
import assert from 'node:assert/strict';
import { rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { silentLogger } from '../../common/logging.js';
import { parseRedisUrl } from '../../common/redis/connection.js';
import { fleetKeys } from '../../common/redis/keys.js';
import { RedisLink } from '../../common/redis/link.js';
import { RedisPolicySource, sha256 } from '../../gateway/fleet/redis-source.js';
import { RedisPolicyStore } from '../../gateway/fleet/redis-store.js';
import { FilePolicySource } from '../../gateway/policy/file-source.js';
import { PolicyRuntime } from '../../gateway/policy/runtime.js';
import type { PolicySource, UpdateOutcome } from '../../gateway/policy/source.js';
import { removeTempDirs, tempDir, waitFor } from '../helpers/backend.js';
import { policyYaml } from '../helpers/gateway.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';

interface Harness {
  source: PolicySource;
  /** Makes `text` the source's current policy, as an operator would. */
  publish(text: string): Promise<void>;
  close(): Promise<void>;
}

let redis: RedisServer;
let n = 0;

before(async () => {
  redis = await startRedis();
});

after(async () => {
  await redis.close();
  await removeTempDirs();
});

const policy = (timeoutMs: number) =>
  policyYaml({ variants: { a: { endpoints: ['http://127.0.0.1:9'] } }, timeoutMs });

const harnesses: Record<string, (first: string) => Promise<Harness>> = {
  file: async (first) => {
    const file = path.join(await tempDir('infergate-src-'), 'policy.yaml');
    await writeFile(file, first);
    const source = new FilePolicySource(file, { pollMs: 100, debounceMs: 10 });
    return {
      source,
      async publish(text) {
        await writeFile(`${file}.tmp`, text);
        await rename(`${file}.tmp`, file);
      },
      close: () => source.close(),
    };
  },
  redis: async (first) => {
    n += 1;
    const keys = fleetKeys(`src${n}:`);
    const admin = new Redis({ host: '127.0.0.1', port: redis.port });
    const store = new RedisPolicyStore(admin, keys);
    const put = async (text: string) => {
      await store.apply({ source: text, sha256: sha256(text), author: 'test', message: 'test' });
    };
    await put(first);
    const link = new RedisLink(parseRedisUrl(redis.url), silentLogger(), `src-${n}`);
    const source = new RedisPolicySource({
      link,
      keys,
      gatewayId: `src-${n}`,
      host: 'test',
      pid: process.pid,
      logger: silentLogger(),
      pollMs: 100,
    });
    return {
      source,
      publish: put,
      async close() {
        await source.close();
        await link.close();
        admin.disconnect();
      },
    };
  },
};

for (const [name, make] of Object.entries(harnesses)) {
  describe(`policy source contract: ${name}`, () => {
    test('first read, a change delivered, a bad policy refused while the last good one serves', async () => {
      const h = await make(policy(1000));
      const outcomes: UpdateOutcome['result'][] = [];
      const report = h.source.report?.bind(h.source);
      h.source.report = (u, o) => {
        outcomes.push(o.result);
        report?.(u, o);
      };
      try {
        const runtime = await PolicyRuntime.start(h.source);
        assert.equal(runtime.current.models.get('m')?.timeoutMs, 1000);
        await h.publish(policy(1500));
        await waitFor('the change', async () =>
          runtime.current.models.get('m')?.timeoutMs === 1500 ? true : undefined,
        );
        await h.publish('version: 1\nmodels: { m: { variants: {} } }\n');
        await waitFor('the refusal', async () => (outcomes.includes('rejected') ? true : undefined));
        assert.equal(runtime.current.models.get('m')?.timeoutMs, 1500);
        assert.deepEqual(outcomes.slice(0, 2), ['applied', 'applied']);
      } finally {
        await h.close();
      }
    });
  });
}
