import { join } from 'node:path';
import type { Clock } from '../common/clock.js';
import { ApiError } from '../common/errors.js';
import type { Logger } from '../common/logging.js';
import { readModelConfig } from './config.js';
import { BE_ERRORS } from './errors.js';
import { type BatchObserver, type Device, LoadedModel } from './model.js';
import {
  isDir,
  isModelName,
  type ModelSelector,
  modelDirs,
  type StartupLoad,
  startupLoads,
  versionDirs,
} from './repository-layout.js';

// Kept here too: the test helpers import ModelSelector from this file.
export type { ModelSelector } from './repository-layout.js';

export type ModelState = 'READY' | 'LOADING' | 'UNAVAILABLE';

export interface IndexEntry {
  name: string;
  version: string;
  state: ModelState;
  reason: string;
}

interface VersionSlot {
  version: string;
  state: ModelState;
  reason: string;
  model: LoadedModel | undefined;
}

export interface RepositoryOptions {
  root: string;
  /**
   * The models (and versions) to load at startup; every model when undefined. The others are
   * listed in the index as not loaded, and the load API still loads them (every version).
   */
  models?: readonly ModelSelector[] | undefined;
  device: Device;
  clock: Clock;
  logger: Logger;
  observer: (model: string, version: string) => BatchObserver;
}

/**
 * The model repository's loaded models: each version's state, loads and unloads one at a time per
 * model, and the version a request names. What is on disk: see repository-layout.ts. A request
 * without a version gets the highest ready one.
 */
export class ModelRepository {
  private readonly models = new Map<string, VersionSlot[]>();
  /** One load or unload at a time per model. */
  private readonly pending = new Map<string, Promise<void>>();

  constructor(private readonly opts: RepositoryOptions) {}

  /** Model directories on disk (whether loaded or not). */
  scan(): Promise<string[]> {
    return modelDirs(this.opts.root);
  }

  /**
   * What to load at startup: every model on disk, or the `models` selection checked against the
   * disk. Throws ModelSelectionError naming every entry whose model or version is not there.
   */
  startupLoads(): Promise<StartupLoad[]> {
    return startupLoads(this.opts.root, this.opts.models);
  }

  /**
   * Loads (or reloads) every version of a model, or only `versions`; the others on disk are then
   * listed as not loaded. Throws ApiError when nothing could be loaded.
   */
  load(name: string, versions?: readonly string[]): Promise<void> {
    return this.serialize(name, () => this.doLoad(name, versions));
  }

  unload(name: string): Promise<void> {
    return this.serialize(name, () => this.doUnload(name));
  }

  private serialize(name: string, task: () => Promise<void>): Promise<void> {
    const prev = this.pending.get(name) ?? Promise.resolve();
    const next = prev.then(task, task);
    const tail = next.catch(() => undefined);
    this.pending.set(name, tail);
    void tail.then(() => {
      if (this.pending.get(name) === tail) this.pending.delete(name);
    });
    return next;
  }

  private async doLoad(name: string, only: readonly string[] | undefined): Promise<void> {
    if (!isModelName(name)) {
      throw new ApiError(
        BE_ERRORS.BE_ERR_MODEL_NOT_FOUND,
        `'${name.slice(0, 64)}' is not a valid model name`,
        {
          field: 'model',
        },
      );
    }
    const dir = join(this.opts.root, name);
    if (!(await isDir(dir))) {
      throw new ApiError(BE_ERRORS.BE_ERR_MODEL_NOT_FOUND, `model '${name}' is not in the model repository`, {
        field: 'model',
      });
    }
    const onDisk = await versionDirs(this.opts.root, name);
    const versions = only === undefined ? onDisk : onDisk.filter((v) => only.includes(v));
    const old = this.models.get(name) ?? [];
    const slots: VersionSlot[] = versions.map((version) => ({
      version,
      state: 'LOADING',
      reason: '',
      model: undefined,
    }));
    // Old versions keep serving until the new ones are ready.
    if (old.length === 0) {
      this.models.set(name, slots);
    }
    let config: Awaited<ReturnType<typeof readModelConfig>> | undefined;
    let configError = '';
    try {
      config = await readModelConfig(join(dir, 'config.yaml'));
    } catch (e) {
      configError = (e as Error).message;
    }
    for (const slot of slots) {
      if (config === undefined) {
        slot.state = 'UNAVAILABLE';
        slot.reason = configError;
        continue;
      }
      try {
        slot.model = await LoadedModel.load({
          name,
          version: slot.version,
          path: join(dir, slot.version, 'model.onnx'),
          config,
          device: this.opts.device,
          clock: this.opts.clock,
          logger: this.opts.logger,
          observer: this.opts.observer(name, slot.version),
        });
        slot.state = 'READY';
        this.opts.logger.info(
          {
            model: name,
            version: slot.version,
            provider: slot.model.provider,
            maxBatchSize: slot.model.maxBatchSize,
          },
          'model version loaded',
        );
      } catch (e) {
        slot.state = 'UNAVAILABLE';
        slot.reason = `failed to load: ${(e as Error).message}`;
        this.opts.logger.error(
          { model: name, version: slot.version, reason: slot.reason },
          'model version failed',
        );
      }
    }
    this.models.set(name, slots);
    await Promise.all(old.map((s) => s.model?.close()));
    if (!slots.some((s) => s.state === 'READY')) {
      const reason =
        slots.length === 0 ? 'it has no version directories' : slots.map((s) => s.reason).join('; ');
      throw new ApiError(
        BE_ERRORS.BE_ERR_MODEL_LOAD_FAILED,
        `model '${name}' could not be loaded: ${reason}`,
      );
    }
  }

  private async doUnload(name: string): Promise<void> {
    const slots = this.models.get(name);
    if (slots === undefined) {
      throw new ApiError(BE_ERRORS.BE_ERR_MODEL_NOT_FOUND, `model '${name.slice(0, 64)}' is not loaded`, {
        field: 'model',
      });
    }
    const models = slots.map((s) => s.model);
    for (const slot of slots) {
      slot.state = 'UNAVAILABLE';
      slot.reason = 'unloaded';
      slot.model = undefined;
    }
    await Promise.all(models.map((m) => m?.close()));
    this.opts.logger.info({ model: name }, 'model unloaded');
  }

  /** Every known version with its state, as the repository index extension answers. */
  async index(readyOnly: boolean): Promise<IndexEntry[]> {
    const out: IndexEntry[] = [];
    const names = new Set([...(await this.scan()), ...this.models.keys()]);
    for (const name of [...names].sort()) {
      const slots = this.models.get(name);
      if (slots === undefined) {
        if (!readyOnly) out.push({ name, version: '', state: 'UNAVAILABLE', reason: 'not loaded' });
        continue;
      }
      const entries: IndexEntry[] = slots.map((s) => ({
        name,
        version: s.version,
        state: s.state,
        reason: s.reason,
      }));
      // Versions on disk without a slot (left out by a startup selection, or copied there since
      // the model loaded): not loaded, as a model never loaded is.
      const onDisk = await versionDirs(this.opts.root, name).catch(() => [] as string[]);
      for (const version of onDisk) {
        if (slots.some((s) => s.version === version)) continue;
        entries.push({ name, version, state: 'UNAVAILABLE', reason: 'not loaded' });
      }
      entries.sort((a, b) => Number(a.version) - Number(b.version));
      for (const e of entries) if (!readyOnly || e.state === 'READY') out.push(e);
    }
    return out;
  }

  /** Loaded versions, for metrics and shutdown. */
  *loaded(): Iterable<LoadedModel> {
    for (const slots of this.models.values()) {
      for (const s of slots) if (s.model !== undefined) yield s.model;
    }
  }

  *slots(): Iterable<{ name: string; version: string; state: ModelState; model: LoadedModel | undefined }> {
    for (const [name, slots] of this.models) {
      for (const s of slots) yield { name, version: s.version, state: s.state, model: s.model };
    }
  }

  versionsOf(name: string): string[] {
    return (this.models.get(name) ?? []).map((s) => s.version);
  }

  /**
   * The model version a request names, or the highest ready version. 404 for an unknown model or
   * version, 503 for one that is known but not ready.
   */
  resolve(name: string, version: string | undefined): LoadedModel {
    const slots = this.models.get(name);
    if (slots === undefined) {
      throw new ApiError(BE_ERRORS.BE_ERR_MODEL_NOT_FOUND, `unknown model '${name.slice(0, 128)}'`, {
        field: 'model',
      });
    }
    if (version === undefined) {
      for (let i = slots.length - 1; i >= 0; i--) {
        const m = slots[i]!.model;
        if (m !== undefined && slots[i]!.state === 'READY') return m;
      }
      throw new ApiError(BE_ERRORS.BE_ERR_MODEL_NOT_READY, `model '${name}' has no ready version`, {
        retryAfterSeconds: 1,
      });
    }
    const slot = slots.find((s) => s.version === version);
    if (slot === undefined) {
      throw new ApiError(
        BE_ERRORS.BE_ERR_VERSION_NOT_FOUND,
        `model '${name}' has no version '${version.slice(0, 32)}' (versions: ${slots.map((s) => s.version).join(', ')})`,
        { field: 'version' },
      );
    }
    if (slot.model === undefined || slot.state !== 'READY') {
      throw new ApiError(
        BE_ERRORS.BE_ERR_MODEL_NOT_READY,
        `model '${name}' version ${version} is not ready (${slot.reason || slot.state})`,
        { retryAfterSeconds: 1 },
      );
    }
    return slot.model;
  }

  async close(): Promise<void> {
    await Promise.all([...this.loaded()].map((m) => m.close()));
  }
}
