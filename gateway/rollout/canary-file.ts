/**
 * File mode's optional canary state file: every transition of a rollout is written to a JSON file
 * (to a temporary name, then renamed), and a gateway that starts again takes up each rollout whose
 * canary section is unchanged where it was: the step, the time already spent in it, or its end.
 * The samples of a step in progress are not kept: the step collects again from the restart.
 */
import { readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import type { Logger } from '../../common/logging.js';
import type { CanaryController, PersistedCanary } from './canary.js';
import type { CanaryCoordinator } from './rollouts.js';

interface Entry {
  readonly config: string;
  readonly state: PersistedCanary['state'];
  readonly step: number;
  /** Wall-clock ms since the epoch. */
  readonly stepStartedAt: number;
  readonly reason: string | null;
}

export class CanaryStateFile implements CanaryCoordinator {
  private readonly entries: Record<string, Entry>;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly path: string,
    private readonly logger: Logger,
    private readonly wallNow: () => number = Date.now,
  ) {
    this.entries = {};
    try {
      const doc = JSON.parse(readFileSync(path, 'utf8')) as { rollouts?: Record<string, Entry> };
      Object.assign(this.entries, doc.rollouts ?? {});
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        logger.warn({ err, path }, 'canary state file unreadable; rollouts start over');
      }
    }
  }

  attach(controller: CanaryController): void {
    const e = this.entries[controller.model];
    if (e !== undefined && e.config === controller.key) {
      controller.restore({
        state: e.state,
        step: e.step,
        stepAgeMs: Math.max(0, this.wallNow() - e.stepStartedAt),
        reason: e.reason,
      });
      this.logger.info(
        { model: controller.model, state: e.state, step: e.step },
        'canary rollout taken up from the state file',
      );
    }
    controller.onTransition = (p) => this.save(controller, p);
    this.save(controller, controller.persisted());
  }

  detach(controller: CanaryController): void {
    controller.onTransition = undefined;
  }

  async close(): Promise<void> {
    await this.writing;
  }

  private save(c: CanaryController, p: PersistedCanary): void {
    this.entries[c.model] = {
      config: c.key,
      state: p.state,
      step: p.step,
      stepStartedAt: this.wallNow() - p.stepAgeMs,
      reason: p.reason,
    };
    const text = `${JSON.stringify({ rollouts: this.entries }, null, 2)}\n`;
    this.writing = this.writing.then(async () => {
      try {
        await writeFile(`${this.path}.tmp`, text);
        await rename(`${this.path}.tmp`, this.path);
      } catch (err) {
        this.logger.warn({ err, path: this.path }, 'canary state file not written');
      }
    });
  }
}
