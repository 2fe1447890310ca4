/**
 * Nanosecond timestamps taken at the log call, as decimal strings (the value
 * is above 2^53). Strictly increasing per page: two calls in one millisecond,
 * or a clock that steps back, get the previous value + 1 ns. Each page starts
 * at a random microsecond inside the millisecond, so two tabs or two terminals
 * logging the same line in the same millisecond do not produce the same
 * (timestamp, line) pair, which Loki would keep once.
 */
export class NanoClock {
  private lastMs = -1;
  private lastSub = 0;
  private readonly offset: number;

  constructor(private readonly now: () => number = Date.now, random: () => number = Math.random) {
    this.offset = Math.floor(random() * 999) * 1000;
  }

  next(): string {
    let ms = Math.floor(this.now());
    let sub = this.offset;
    if (ms <= this.lastMs) {
      ms = this.lastMs;
      sub = this.lastSub + 1;
      if (sub > 999_999) {
        ms += 1;
        sub = 0;
      }
    }
    this.lastMs = ms;
    this.lastSub = sub;
    return `${ms}${String(sub).padStart(6, '0')}`;
  }
}

/** Milliseconds of a nanosecond timestamp string. */
export function nsToMs(ts: string): number {
  return ts.length > 6 ? Number(ts.slice(0, -6)) : 0;
}

/** Spool key: sorts by timestamp, then by page session (unique: one clock per page). */
export function entryKey(ts: string, session: string): string {
  return `${ts.padStart(20, '0')}~${session}`;
}
