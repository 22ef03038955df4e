/**
 * What shadow comparisons add up to, per model and compared variant: per output the worst
 * differences seen, shape and datatype mismatches, and for classifications top-1 agreement with
 * its 95% Wilson interval and the flip rate; a bounded sample of the latest disagreements.
 * Pure accumulation, no I/O.
 */
import type { Comparison, OutputComparison } from './compare.js';
import { type Interval, wilson } from './stats.js';

/** How many disagreements a tally keeps (the newest), for the admin view and the log. */
export const DISAGREEMENT_SAMPLE = 20;

interface OutputTally {
  compared: number;
  missing: number;
  shapeMismatches: number;
  datatypeMismatches: number;
  maxAbs: number;
  sumMaxAbs: number;
  maxRel: number;
  rows: number;
  top1Agree: number;
}

export interface Disagreement {
  readonly requestId: string;
  readonly at: string;
  readonly outputs: readonly OutputComparison[];
  /** First values of disagreeing outputs, only when the policy asks for them. */
  readonly data?: Readonly<Record<string, { primary: unknown[]; shadow: unknown[] }>>;
}

export interface OutputView {
  readonly name: string;
  readonly compared: number;
  readonly missing: number;
  readonly shapeMismatches: number;
  readonly datatypeMismatches: number;
  readonly maxAbsDifference: number | null;
  readonly meanMaxAbsDifference: number | null;
  readonly maxRelDifference: number | null;
  readonly top1?: {
    readonly rows: number;
    readonly agreement: number | null;
    readonly wilson95: Interval;
    readonly flipRate: number | null;
  };
}

export interface TallyView {
  readonly variant: string;
  readonly compared: number;
  readonly agreed: number;
  /** Share of compared requests whose every output agreed. */
  readonly agreement: number | null;
  readonly outputs: readonly OutputView[];
}

export class ShadowTally {
  compared = 0;
  agreed = 0;
  private readonly outputs = new Map<string, OutputTally>();
  readonly disagreements: Disagreement[] = [];

  constructor(
    readonly variant: string,
    private readonly classifications: ReadonlySet<string>,
  ) {}

  /** Adds one comparison; returns true when it was a disagreement (and was sampled). */
  add(c: Comparison, requestId: string, at: Date, data?: Disagreement['data']): boolean {
    this.compared += 1;
    if (c.agrees) this.agreed += 1;
    for (const o of c.outputs) {
      let t = this.outputs.get(o.name);
      if (t === undefined) {
        t = {
          compared: 0,
          missing: 0,
          shapeMismatches: 0,
          datatypeMismatches: 0,
          maxAbs: 0,
          sumMaxAbs: 0,
          maxRel: 0,
          rows: 0,
          top1Agree: 0,
        };
        this.outputs.set(o.name, t);
      }
      t.compared += 1;
      if (o.missing !== undefined) {
        t.missing += 1;
        continue;
      }
      if (!o.shapeMatch) t.shapeMismatches += 1;
      if (!o.datatypeMatch) t.datatypeMismatches += 1;
      if (o.maxAbs > t.maxAbs) t.maxAbs = o.maxAbs;
      if (o.maxRel > t.maxRel) t.maxRel = o.maxRel;
      t.sumMaxAbs += o.maxAbs;
      t.rows += o.rows;
      t.top1Agree += o.top1Agree;
    }
    if (c.agrees) return false;
    this.disagreements.push({
      requestId,
      at: at.toISOString(),
      outputs: c.outputs,
      ...(data === undefined ? {} : { data }),
    });
    if (this.disagreements.length > DISAGREEMENT_SAMPLE) this.disagreements.shift();
    return true;
  }

  /** Top-1 agreement over every classification output's rows, or undefined without any. */
  top1(): { rows: number; agree: number } | undefined {
    let rows = 0;
    let agree = 0;
    for (const [name, t] of this.outputs) {
      if (!this.classifications.has(name)) continue;
      rows += t.rows;
      agree += t.top1Agree;
    }
    return rows === 0 ? undefined : { rows, agree };
  }

  view(): TallyView {
    return {
      variant: this.variant,
      compared: this.compared,
      agreed: this.agreed,
      agreement: this.compared === 0 ? null : this.agreed / this.compared,
      outputs: [...this.outputs].map(([name, t]) => {
        const present = t.compared - t.missing;
        const view: OutputView = {
          name,
          compared: t.compared,
          missing: t.missing,
          shapeMismatches: t.shapeMismatches,
          datatypeMismatches: t.datatypeMismatches,
          maxAbsDifference: present === 0 ? null : finite(t.maxAbs),
          meanMaxAbsDifference: present === 0 ? null : finite(t.sumMaxAbs / present),
          maxRelDifference: present === 0 ? null : finite(t.maxRel),
        };
        if (!this.classifications.has(name)) return view;
        return {
          ...view,
          top1: {
            rows: t.rows,
            agreement: t.rows === 0 ? null : t.top1Agree / t.rows,
            wilson95: wilson(t.top1Agree, t.rows),
            flipRate: t.rows === 0 ? null : 1 - t.top1Agree / t.rows,
          },
        };
      }),
    };
  }
}

/** JSON has no Infinity: a difference beyond measure (shape or BYTES mismatch) shows as null. */
function finite(x: number): number | null {
  return Number.isFinite(x) ? x : null;
}
