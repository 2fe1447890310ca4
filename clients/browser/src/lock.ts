/**
 * Leader election with the Web Locks API: the tab that holds the exclusive
 * lock `name` is the only one that sends; the others wait in the lock's queue
 * and the next one takes over when the leader's page goes away (the browser
 * releases its locks). Without the API (an old browser, an insecure context)
 * every tab sends on its own.
 */
export interface Leadership {
  /** true when the Web Locks API was there; false when this tab sends on its own. */
  readonly locked: boolean;
  release(): void;
}

/**
 * `onLeader(waited)`: waited is false when the lock was free at once (no
 * other tab led while this page lived), true when this tab queued for it.
 */
export function electLeader(name: string, onLeader: (waited: boolean) => void): Leadership {
  const locks = typeof navigator !== 'undefined' ? navigator.locks : undefined;
  if (!locks || typeof locks.request !== 'function') {
    queueMicrotask(() => onLeader(false));
    return { locked: false, release: () => undefined };
  }
  const abort = new AbortController();
  let release: () => void = () => undefined;
  let done = false;
  const hold = (waited: boolean): Promise<void> => {
    if (done) return Promise.resolve();
    onLeader(waited);
    return new Promise<void>((resolve) => {
      release = resolve;
    });
  };
  locks
    .request(name, { mode: 'exclusive', ifAvailable: true }, (lock) => {
      if (lock) return hold(false);
      // Another tab leads: queue; the browser hands the lock over when its page goes away.
      locks.request(name, { mode: 'exclusive', signal: abort.signal }, () => hold(true)).catch(() => undefined);
      return undefined;
    })
    .catch(() => undefined);
  return {
    locked: true,
    release: () => {
      done = true;
      abort.abort();
      release();
    },
  };
}
