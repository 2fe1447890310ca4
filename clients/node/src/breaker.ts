import type { Clock } from './clock';

export type BreakerState = 'closed' | 'open' | 'half_open';

export interface BreakerOptions {
  /** Consecutive failed requests that open the circuit. */
  failureThreshold: number;
  /** How long the circuit stays open before a half-open probe. */
  openMs: number;
  /** Ceiling of the open time, which doubles after every failed probe. */
  maxOpenMs: number;
}

/**
 * Circuit breaker over the push requests. Closed: requests flow and failures
 * are counted. Open: no request at all until `openMs` passed (logs keep landing
 * in the spool, nothing is dropped). Half-open: exactly one small probe batch;
 * success closes, failure reopens with a doubled open time.
 */
export class CircuitBreaker {
  private current: BreakerState = 'closed';
  private failures = 0;
  private openedAt = 0;
  private openFor: number;
  transitions = 0;

  constructor(
    private readonly options: BreakerOptions,
    private readonly clock: Clock,
    private readonly onChange: (from: BreakerState, to: BreakerState) => void = () => undefined,
  ) {
    this.openFor = options.openMs;
  }

  get state(): BreakerState {
    if (this.current === 'open' && this.clock.now() - this.openedAt >= this.openFor) this.move('half_open');
    return this.current;
  }

  /** Milliseconds until a request may be made (0 when closed or half-open). */
  waitMs(): number {
    if (this.state !== 'open') return 0;
    return Math.max(0, this.openedAt + this.openFor - this.clock.now());
  }

  success(): void {
    this.failures = 0;
    this.openFor = this.options.openMs;
    if (this.current !== 'closed') this.move('closed');
  }

  failure(): void {
    const state = this.state;
    if (state === 'half_open') {
      this.openFor = Math.min(this.openFor * 2, this.options.maxOpenMs);
      this.open();
      return;
    }
    this.failures += 1;
    if (state === 'closed' && this.failures >= this.options.failureThreshold) this.open();
  }

  private open(): void {
    this.openedAt = this.clock.now();
    this.move('open');
  }

  private move(to: BreakerState): void {
    if (to === this.current) return;
    const from = this.current;
    this.current = to;
    this.transitions += 1;
    this.onChange(from, to);
  }
}
