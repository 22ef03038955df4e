/**
 * The control plane of fleet mode: `infergate policy apply|get|history|diff|rollback|status
 * --redis URL`. The store's access is in fleet-store.ts, writing and waiting in policy-publish.ts.
 */
import type { RedisTarget } from '../common/redis/connection.js';
import type { FleetKeys } from '../common/redis/keys.js';
import { nonNegativeInt, positiveInt, UsageError } from './args.js';
import { describeChanges, unifiedDiff } from './diff.js';
import {
  checkPolicy,
  type FleetIo,
  type FleetValues,
  readText,
  stored,
  versionArg,
  withStore,
} from './fleet-store.js';
import { publish, waitTimeout } from './policy-publish.js';
import { table } from './table.js';

export { type FleetIo, PolicyInvalid } from './fleet-store.js';

export async function applyCommand(
  target: RedisTarget,
  keys: FleetKeys,
  file: string,
  v: FleetValues,
  io: FleetIo,
): Promise<void> {
  const text = await readText(file);
  checkPolicy(text, file, io);
  const ifVersion =
    v['if-version'] === undefined ? undefined : nonNegativeInt(v['if-version'], '--if-version');
  const timeoutMs = waitTimeout(v);
  await withStore(target, keys, (store) =>
    publish(
      store,
      target,
      { text, message: v.message ?? `apply ${file}`, author: v.author, ifVersion },
      v.wait === true,
      timeoutMs,
      io,
    ),
  );
}

export async function getCommand(
  target: RedisTarget,
  keys: FleetKeys,
  v: FleetValues,
  io: FleetIo,
): Promise<void> {
  const version = versionArg(v.version, '--version');
  await withStore(target, keys, async (store) => {
    const p = await stored(store, version);
    io.err(
      `# version ${p.version}, ${new Date(p.time).toISOString()}, ${p.author}: ${p.message} (sha256 ${p.sha256.slice(0, 12)})\n`,
    );
    io.out(p.source.endsWith('\n') ? p.source : `${p.source}\n`);
  });
}

export async function historyCommand(
  target: RedisTarget,
  keys: FleetKeys,
  v: FleetValues,
  io: FleetIo,
): Promise<void> {
  const limit = v.limit === undefined ? 20 : positiveInt(v.limit, '--limit');
  await withStore(target, keys, async (store) => {
    const rows = await store.history(limit);
    if (rows.length === 0) {
      io.out(`no policy applied yet (prefix '${keys.prefix}')\n`);
      return;
    }
    io.out(
      table(
        ['VERSION', 'TIME', 'AUTHOR', 'MESSAGE', 'SHA256'],
        rows.map((r, i) => [
          `${r.version}${i === 0 ? ' *' : ''}`,
          new Date(r.time).toISOString().replace('T', ' ').slice(0, 19),
          r.author,
          r.message,
          r.sha256.slice(0, 12),
        ]),
      ),
    );
  });
}

export async function diffCommand(
  target: RedisTarget,
  keys: FleetKeys,
  file: string | undefined,
  v: FleetValues,
  io: FleetIo,
): Promise<void> {
  if (file !== undefined && (v.from !== undefined || v.to !== undefined)) {
    throw new UsageError('diff takes FILE or --from A --to B, not both');
  }
  if (file === undefined && (v.from === undefined || v.to === undefined)) {
    throw new UsageError('diff takes FILE (against the current version) or --from A --to B');
  }
  const fileText = file === undefined ? undefined : await readText(file);
  await withStore(target, keys, async (store) => {
    const a = await stored(store, versionArg(v.from, '--from'));
    const b =
      fileText === undefined
        ? await stored(store, versionArg(v.to, '--to'))
        : { version: undefined, source: fileText };
    const aName = `version ${a.version}`;
    const bName = b.version === undefined ? (file as string) : `version ${b.version}`;
    io.out(`${aName} -> ${bName}, in words:\n`);
    for (const line of describeChanges(a.source, b.source)) io.out(`  ${line}\n`);
    const lines = unifiedDiff(a.source, b.source, aName, bName);
    io.out(lines === '' ? '\nin lines: identical\n' : `\nin lines:\n${lines}`);
  });
}

export async function rollbackCommand(
  target: RedisTarget,
  keys: FleetKeys,
  versionText: string | undefined,
  v: FleetValues,
  io: FleetIo,
): Promise<void> {
  const wanted = versionArg(versionText, 'VERSION');
  const timeoutMs = waitTimeout(v);
  await withStore(target, keys, async (store) => {
    const history = await store.history();
    const current = history[0];
    if (current === undefined) throw new Error(`the store holds no policy yet (prefix '${keys.prefix}')`);
    const version = wanted ?? history[1]?.version;
    if (version === undefined)
      throw new Error(`version ${current.version} is the only one: nothing to roll back to`);
    const old = await stored(store, version);
    checkPolicy(old.source, `version ${version}`, io);
    await publish(
      store,
      target,
      {
        text: old.source,
        message: v.message ?? `rollback to version ${version}`,
        author: v.author,
        ifVersion: current.version,
      },
      v.wait === true,
      timeoutMs,
      io,
    );
  });
}

export async function statusCommand(target: RedisTarget, keys: FleetKeys, io: FleetIo): Promise<void> {
  await withStore(target, keys, async (store) => {
    const [latest, gateways] = await Promise.all([store.latestVersion(), store.gateways()]);
    io.out(
      `store: version ${latest}${latest === 0 ? ' (empty)' : ''}, prefix '${keys.prefix}', ${gateways.length} live gateway${gateways.length === 1 ? '' : 's'}\n`,
    );
    if (gateways.length === 0) return;
    const now = Date.now();
    io.out(
      table(
        ['GATEWAY', 'HOST', 'PID', 'SERVING', 'FROM', 'LAST', 'RESULT', 'BEHIND', 'AGE'],
        gateways.map((g) => [
          g.id,
          g.host,
          String(g.pid),
          String(g.servingVersion),
          g.servingFrom,
          String(g.lastVersion),
          g.lastResult === 'ack' ? 'ACK' : 'NACK',
          String(Math.max(0, latest - g.servingVersion)),
          `${Math.max(0, Math.round((now - g.lastAt) / 1000))}s`,
        ]),
      ),
    );
    for (const g of gateways) {
      if (g.lastResult === 'nack')
        for (const e of g.errors) io.out(`  ${g.id} refused version ${g.lastVersion}: ${e}\n`);
    }
  });
}
