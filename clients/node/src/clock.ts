/**
 * Time, behind an interface so tests can run hours of outage in milliseconds.
 * Everything in the package that waits or reads the time goes through a Clock.
 */
export interface TimerHandle {
  unref?: () => unknown;
}

export interface Clock {
  /** Wall-clock time, milliseconds since the epoch (Date.now()). */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** Resolves after `ms` on `clock`, or at once when `signal` aborts. Never keeps the process alive. */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted || ms <= 0) {
      resolve();
      return;
    }
    const onAbort = (): void => {
      clock.clearTimeout(handle);
      resolve();
    };
    const handle = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    handle.unref?.();
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
