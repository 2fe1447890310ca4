import type { Clock, TimerHandle } from '../../src/clock';

interface Timer {
  id: number;
  at: number;
  fn: () => void;
}

/** A clock whose time moves only when the test says so; timers fire in order. */
export class FakeClock implements Clock {
  private t: number;
  private timers: Timer[] = [];
  private nextId = 1;

  constructor(start = Date.UTC(2026, 0, 15, 9, 0, 0)) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  /** Moves the wall clock without firing timers (a clock step). */
  set(ms: number): void {
    this.t = ms;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer: Timer = { id: this.nextId++, at: this.t + Math.max(0, ms), fn };
    this.timers.push(timer);
    return { id: timer.id } as TimerHandle;
  }

  clearTimeout(handle: TimerHandle): void {
    const id = (handle as { id?: number }).id;
    this.timers = this.timers.filter((t) => t.id !== id);
  }

  get pending(): number {
    return this.timers.length;
  }

  /** Advances by `ms`, firing due timers in order, letting real I/O run between them. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await settle();
      this.timers.sort((a, b) => a.at - b.at || a.id - b.id);
      const next = this.timers[0];
      if (!next || next.at > end) break;
      this.timers.shift();
      if (next.at > this.t) this.t = next.at;
      next.fn();
    }
    this.t = end;
    await settle();
  }

  /** Advances in `step` increments until `cond()` or `maxMs` of fake time. */
  async until(cond: () => boolean, maxMs: number, step = 100): Promise<boolean> {
    for (let spent = 0; spent <= maxMs; spent += step) {
      if (cond()) return true;
      await this.advance(step);
    }
    return cond();
  }
}

/** Lets pending I/O callbacks and promise chains run (a few macrotask turns). */
export async function settle(turns = 3): Promise<void> {
  for (let i = 0; i < turns; i += 1) await new Promise<void>((r) => setImmediate(r));
}

/** Real-time pause: lets loopback HTTP round trips (and gzip in the thread pool) finish. */
export function realPause(ms = 2): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Alternates real pauses and fake-time steps until cond() (or maxFakeMs of fake time). */
export async function drive(clock: FakeClock, cond: () => boolean, maxFakeMs: number, stepMs = 100): Promise<boolean> {
  for (let spent = 0; spent <= maxFakeMs; spent += stepMs) {
    await realPause();
    if (cond()) return true;
    await clock.advance(stepMs);
  }
  await realPause();
  return cond();
}
