import type { Clock } from './clock';

/**
 * Nanosecond timestamps, taken at the log call, strictly increasing per process.
 *
 * Loki keeps one entry per (stream, timestamp, line): two identical lines with
 * the same timestamp collapse into one. So every entry gets a unique
 * timestamp: milliseconds from the wall clock, and when two calls fall in the
 * same millisecond (or the wall clock steps backwards), the previous value + 1 ns.
 * The value is stored in the spool with the line, so a retry or a replay after
 * a crash sends the same (timestamp, line) and collapses onto what Loki has.
 */
export class TimestampSource {
  private last = 0n;
  private lastWallMs = 0;
  /** How often the wall clock was seen going backwards (NTP step, manual change). */
  backwardSteps = 0;

  constructor(private readonly clock: Clock) {}

  next(): bigint {
    const wall = this.clock.now();
    if (wall < this.lastWallMs) this.backwardSteps += 1;
    this.lastWallMs = wall;
    let ns = BigInt(Math.floor(wall)) * 1_000_000n;
    if (ns <= this.last) ns = this.last + 1n;
    this.last = ns;
    return ns;
  }

  /** Ensures later timestamps are above `ns` (used after replaying a spool written by an earlier process). */
  observe(ns: bigint): void {
    if (ns > this.last) this.last = ns;
  }
}
