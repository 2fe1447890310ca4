import type { Labels } from './spool';

/**
 * Stream labels and the cardinality guard.
 *
 * Every stream has exactly the label keys fixed at construction: store,
 * service, environment, level, instance, the static `labels` and the
 * `dynamicLabels` keys a log call may fill. A log call that brings any other
 * key is refused that label (the key/value goes to structured metadata and the
 * refusal is counted); a dynamic key that already has `maxValuesPerKey`
 * distinct values gets the same treatment for new values.
 */
export const LABEL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
export const RESERVED = ['store', 'service', 'environment', 'level', 'instance'] as const;
/** Loki's default max_label_names_per_series (the loki role keeps 15). */
export const MAX_LABEL_NAMES = 15;

export interface LabelGuardOptions {
  base: Record<string, string>;
  dynamicKeys: readonly string[];
  maxValuesPerKey: number;
}

export class LabelGuard {
  private readonly cache = new Map<string, Labels>();
  private readonly values = new Map<string, Set<string>>();
  private readonly dynamic: ReadonlySet<string>;
  refused = 0;

  constructor(private readonly options: LabelGuardOptions) {
    for (const key of [...Object.keys(options.base), ...options.dynamicKeys]) {
      if (!LABEL_NAME.test(key)) throw new Error(`label name ${JSON.stringify(key)} is not a valid Loki label name`);
    }
    for (const key of options.dynamicKeys) {
      if ((RESERVED as readonly string[]).includes(key)) throw new Error(`label ${key} is set by the transport and cannot be dynamic`);
    }
    const count = new Set([...Object.keys(options.base), 'level', ...options.dynamicKeys]).size;
    if (count > MAX_LABEL_NAMES) throw new Error(`${count} label names per stream; Loki accepts at most ${MAX_LABEL_NAMES}`);
    this.dynamic = new Set(options.dynamicKeys);
  }

  /**
   * The label set for a log call (the same object for the same stream), and
   * whatever was refused as labels, to be kept as structured metadata.
   */
  resolve(level: string, requested: Record<string, unknown> | undefined, override?: Record<string, string>): { labels: Labels; refused: Record<string, string> | undefined } {
    let refused: Record<string, string> | undefined;
    let key = `${level}`;
    const chosen: [string, string][] = [];
    if (requested) {
      for (const [k, raw] of Object.entries(requested)) {
        if (raw === undefined || raw === null) continue;
        const v = String(raw);
        if (!this.dynamic.has(k) || !this.admitValue(k, v)) {
          refused ??= {};
          refused[k] = v;
          this.refused += 1;
          continue;
        }
        chosen.push([k, v]);
      }
      chosen.sort((a, b) => (a[0] < b[0] ? -1 : 1));
      for (const [k, v] of chosen) key += `\u0000${k}\u0001${v}`;
    }
    if (override) for (const [k, v] of Object.entries(override)) key += `\u0002${k}\u0001${v}`;
    let labels = this.cache.get(key);
    if (labels === undefined) {
      const out: Record<string, string> = { ...this.options.base, ...override, level };
      for (const [k, v] of chosen) out[k] = v;
      labels = Object.freeze(out);
      this.cache.set(key, labels);
    }
    return { labels, refused };
  }

  private admitValue(key: string, value: string): boolean {
    let set = this.values.get(key);
    if (!set) {
      set = new Set();
      this.values.set(key, set);
    }
    if (set.has(value)) return true;
    if (set.size >= this.options.maxValuesPerKey) return false;
    set.add(value);
    return true;
  }
}
