/** The dated results files of earlier `npm run bench` runs (load/results/YYYY-MM-DD.json). */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { HistoryEntry } from './chart.js';
import type { Figure } from './ratios.js';

export const DATED = /^\d{4}-\d{2}-\d{2}\.json$/;

/** Every dated file in `dir` with a figures list, oldest first; others are skipped and named in `skipped`. */
export async function readHistory(dir: string): Promise<{ entries: HistoryEntry[]; skipped: string[] }> {
  const entries: HistoryEntry[] = [];
  const skipped: string[] = [];
  let names: string[] = [];
  try {
    names = (await readdir(dir)).filter((f) => DATED.test(f)).sort();
  } catch {
    return { entries, skipped };
  }
  for (const name of names) {
    try {
      const doc = JSON.parse(await readFile(join(dir, name), 'utf8')) as {
        date?: unknown;
        figures?: unknown;
      };
      if (typeof doc.date !== 'string' || !Array.isArray(doc.figures)) throw new Error('no date or figures');
      entries.push({ date: doc.date, figures: doc.figures as Figure[] });
    } catch {
      skipped.push(name);
    }
  }
  return { entries, skipped };
}
