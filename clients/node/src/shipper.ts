import { Backoff, parseRetryAfter } from './backoff';
import { CircuitBreaker } from './breaker';
import { sleep, type Clock, type TimerHandle } from './clock';
import type { DeadLetter } from './deadletter';
import type { PushClient, PushResponse } from './http';
import { isRejected, isSuspect, labelsMatch, parseLokiError } from './loki-errors';
import type { RetryReason, TransportMetrics } from './metrics';
import { StoredEntry, type Position, type Spool, type SpoolEntry } from './spool';

/**
 * The delivery loop: takes the oldest batch from the spool, pushes it, and
 * only moves the spool's cursor once every line of it is either stored by
 * Loki or dead-lettered. One request in flight at a time (so per stream too),
 * oldest first: a backlog replays in timestamp order within each stream.
 */
export interface ShipperOptions {
  spool: Spool;
  client: PushClient;
  metrics: TransportMetrics;
  deadLetter: DeadLetter;
  clock: Clock;
  random: () => number;
  batchMaxLines: number;
  batchMaxBytes: number;
  batchWaitMs: number;
  probeLines: number;
  startupJitterMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  retryAfterMaxMs: number;
  authRetryMs: number;
  breakerFailures: number;
  breakerOpenMs: number;
  breakerMaxOpenMs: number;
  maxBisectRequests: number;
  /**
   * Internal problems worth an operator's eye. `spool`: also log it as a line
   * of its own (only state changes: auth pause, breaker open, resume; never
   * per-line events, which could feed on themselves).
   */
  report: (level: 'error' | 'warn', message: string, spool: boolean) => void;
  /** Called before every retry after 401/403: re-reads the bundle (a rotated token arrives with a new one). */
  reloadCredentials: () => void;
  /** Breaker transitions. */
  onBreaker?: (from: string, to: string) => void;
}

interface Current {
  end: Position;
  total: number;
  deadLettered: number;
  /** Parts still to deliver; the head is in flight. */
  parts: SpoolEntry[][];
  bisectRequests: number;
}

type Outcome =
  | { kind: 'done' }
  | { kind: 'continue' }
  | { kind: 'retry'; reason: RetryReason; retryAfterMs: number | undefined; countsForBreaker: boolean }
  | { kind: 'auth'; status: number; body: string }
  | { kind: 'stopped' };

export type ShipperState = 'closed' | 'open' | 'half_open' | 'auth_paused';

export class Shipper {
  readonly breaker: CircuitBreaker;
  private readonly backoff: Backoff;
  private current: Current | undefined;
  private authPaused = false;
  private stopping = false;
  private draining = false;
  private readonly stopSignal = new AbortController();
  private readonly drainController = new AbortController();
  private lineWake = new AbortController();
  private loopDone: Promise<void> | undefined;
  private inflight: AbortController | undefined;
  private lastErrorReport = '';
  clockSkewSeconds = 0;
  /** Resolvers waiting for an empty spool. */
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly o: ShipperOptions) {
    this.backoff = new Backoff({ baseMs: o.backoffBaseMs, capMs: o.backoffMaxMs, random: o.random });
    this.breaker = new CircuitBreaker(
      { failureThreshold: o.breakerFailures, openMs: o.breakerOpenMs, maxOpenMs: o.breakerMaxOpenMs },
      o.clock,
      (from, to) => {
        o.onBreaker?.(from, to);
        if (to === 'open') o.report('warn', `loki transport: circuit breaker ${from} -> open; lines keep landing in the spool`, true);
      },
    );
  }

  get state(): ShipperState {
    return this.authPaused ? 'auth_paused' : this.breaker.state;
  }

  start(): void {
    this.loopDone ??= this.loop();
  }

  /** New lines arrived. */
  wake(): void {
    // Called on every log call: abort() builds a DOMException each time, so only when it matters.
    if (this.waitingForLines && !this.lineWake.signal.aborted) this.lineWake.abort();
  }

  private waitingForLines = false;

  /** Resolves once the spool is empty (or the shipper stops). */
  idle(): Promise<void> {
    if (this.o.spool.isEmpty && this.current === undefined) return Promise.resolve();
    return new Promise((resolve) => {
      this.idleWaiters.push(resolve);
      if (!this.lineWake.signal.aborted) this.lineWake.abort();
    });
  }

  /**
   * Stops: keeps delivering (without waiting for fuller batches) until the
   * spool is empty or `deadlineMs` passed, then aborts what is in flight.
   * Whatever is unsent stays in the spool for the next start.
   */
  async stop(deadlineMs: number): Promise<void> {
    this.draining = true;
    this.drainController.abort();
    // Not unref'd: a shutdown in progress keeps the process alive until its deadline.
    let timer: TimerHandle | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = this.o.clock.setTimeout(resolve, deadlineMs);
    });
    await Promise.race([this.idle(), deadline]);
    if (timer) this.o.clock.clearTimeout(timer);
    this.stopping = true;
    this.stopSignal.abort();
    this.inflight?.abort();
    await this.loopDone;
    this.releaseIdle();
  }

  private releaseIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  private async loop(): Promise<void> {
    // 100 stores reconnecting at once after an outage: spread the first request.
    if (!this.draining) await sleep(this.o.clock, Math.floor(this.o.random() * this.o.startupJitterMs), AbortSignal.any([this.drainController.signal, this.stopSignal.signal]));
    while (!this.stopping) {
      try {
        await this.step();
      } catch (err) {
        // A bug or an I/O error must not end delivery: report, wait, go on.
        this.o.report('error', `loki transport: delivery loop error: ${(err as Error).stack ?? String(err)}`, false);
        await sleep(this.o.clock, this.o.backoffMaxMs, this.stopSignal.signal);
      }
    }
  }

  private async step(): Promise<void> {
    const breakerWait = this.breaker.waitMs();
    if (breakerWait > 0) {
      await sleep(this.o.clock, breakerWait, this.stopSignal.signal);
      return;
    }
    if (this.current === undefined) {
      const batch = this.o.spool.peek(this.o.batchMaxLines, this.o.batchMaxBytes);
      if (batch.entries.length === 0) {
        this.releaseIdle();
        await this.wait(undefined, true);
        return;
      }
      const full = batch.entries.length >= this.o.batchMaxLines || batch.bytes >= this.o.batchMaxBytes;
      if (!full && !this.draining) {
        // Live traffic: let the batch fill until batchWaitMs after its oldest line.
        const oldestMs = Number(BigInt(batch.entries[0]?.ts ?? '0') / 1_000_000n);
        const wait = Math.min(oldestMs + this.o.batchWaitMs - this.o.clock.now(), this.o.batchWaitMs);
        if (wait > 0) {
          await this.wait(wait, false);
          return;
        }
      }
      this.current = { end: batch.end, total: batch.entries.length, deadLettered: 0, parts: byStream(batch.entries), bisectRequests: 0 };
    }
    const outcome = await this.deliver(this.current);
    switch (outcome.kind) {
      case 'done': {
        const c = this.current;
        this.o.spool.ack(c.end);
        this.o.metrics.sent += c.total - c.deadLettered;
        this.current = undefined;
        this.resumed();
        return;
      }
      case 'continue':
        this.resumed();
        return;
      case 'retry': {
        this.o.metrics.retry(outcome.reason);
        if (outcome.countsForBreaker) this.breaker.failure();
        const jittered = this.backoff.next();
        const delay = outcome.retryAfterMs !== undefined ? Math.max(outcome.retryAfterMs + Math.floor(this.o.random() * this.o.backoffBaseMs), 0) : jittered;
        await sleep(this.o.clock, delay, this.stopSignal.signal);
        return;
      }
      case 'auth': {
        this.o.metrics.retry('auth');
        this.authPaused = true;
        this.reportOnce('error', `loki transport: the edge refused the push (HTTP ${outcome.status}); sending paused, nothing dropped, retrying every ${Math.round(this.o.authRetryMs / 1000)} s with the bundle re-read: ${outcome.body.slice(0, 200)}`, true);
        await sleep(this.o.clock, this.o.authRetryMs, this.stopSignal.signal);
        try {
          this.o.reloadCredentials();
        } catch (err) {
          this.o.report('error', `loki transport: cannot re-read the store bundle: ${(err as Error).message}`, true);
        }
        return;
      }
      case 'stopped':
        return;
    }
  }

  /** After a success: breaker closed, backoff reset, auth pause lifted. */
  private resumed(): void {
    this.backoff.reset();
    this.breaker.success();
    this.lastErrorReport = '';
    if (this.authPaused) {
      this.authPaused = false;
      this.o.report('warn', 'loki transport: the edge accepts the push again; sending resumed', true);
    }
  }

  /** Waits `ms` (or until woken by new lines when `wakeable` and ms is undefined); always ends at drain or stop. */
  private async wait(ms: number | undefined, wakeable: boolean): Promise<void> {
    if (this.stopping || this.draining) return;
    const signals = [this.drainController.signal, this.stopSignal.signal];
    if (wakeable) {
      this.lineWake = new AbortController();
      signals.push(this.lineWake.signal);
      this.waitingForLines = true;
    }
    const signal = AbortSignal.any(signals);
    try {
      if (ms === undefined) {
        if (!this.o.spool.isEmpty) return; // a line came in between the peek and here
        await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
      } else {
        await sleep(this.o.clock, ms, signal);
      }
    } finally {
      this.waitingForLines = false;
    }
  }

  private reportOnce(level: 'error' | 'warn', message: string, spool: boolean): void {
    if (message === this.lastErrorReport) return;
    this.lastErrorReport = message;
    this.o.report(level, message, spool);
  }

  /** Works through the current batch's parts until all are stored or dead-lettered, or a retry is due. */
  private async deliver(c: Current): Promise<Outcome> {
    while (c.parts.length > 0) {
      if (this.stopping) return { kind: 'stopped' };
      const head = c.parts[0] as SpoolEntry[];
      // Half-open or auth-paused: probe with one small batch.
      const probing = this.authPaused || this.breaker.state === 'half_open';
      const part = probing && head.length > this.o.probeLines ? head.slice(0, this.o.probeLines) : head;
      const json = buildPushBody(part);
      let res: PushResponse;
      this.inflight = new AbortController();
      try {
        res = await this.o.client.push(json, this.inflight.signal);
      } catch (err) {
        if (this.stopping) return { kind: 'stopped' };
        const timeout = (err as Error).name === 'PushTimeoutError';
        this.o.metrics.request(timeout ? 'timeout' : 'error');
        this.reportOnce('warn', `loki transport: push failed (${(err as Error).message}); retrying with backoff`, false);
        return { kind: 'retry', reason: timeout ? 'timeout' : 'network', retryAfterMs: undefined, countsForBreaker: true };
      } finally {
        this.inflight = undefined;
      }
      this.o.metrics.request(String(res.status));
      this.noteDate(res.date);
      const replace = (next: SpoolEntry[][]): void => {
        if (part === head) c.parts.splice(0, 1, ...next);
        else c.parts.splice(0, 1, ...next, head.slice(part.length));
      };
      if (res.status >= 200 && res.status < 300) {
        this.o.metrics.sentBytes += json.length;
        if (part === head) c.parts.shift();
        else c.parts[0] = head.slice(part.length);
        if (probing) return c.parts.length === 0 ? { kind: 'done' } : this.probeSucceeded();
        continue;
      }
      if (res.status === 413) {
        if (part.length > 1) {
          const mid = Math.ceil(part.length / 2);
          replace([part.slice(0, mid), part.slice(mid)]);
        } else {
          this.deadLetter(c, part, 'too_large', res);
          replace([]);
        }
        continue;
      }
      if (res.status === 400) {
        this.on400(c, part, res, replace);
        continue;
      }
      if (res.status === 429) {
        const parsed = parseLokiError(res.body);
        if (parsed.limitedStreams.length > 0) {
          // Loki stored the other streams of this push; only the limited ones go again.
          const again = part.filter((e) => parsed.limitedStreams.some((s) => labelsMatch(e.labels, s)));
          if (again.length > 0) replace([again]);
        }
        return { kind: 'retry', reason: 'rate_limited', retryAfterMs: parseRetryAfter(res.retryAfter, this.o.clock.now(), this.o.retryAfterMaxMs), countsForBreaker: false };
      }
      if (res.status === 401 || res.status === 403) return { kind: 'auth', status: res.status, body: res.body };
      if (res.status >= 500 || res.status === 408) {
        return { kind: 'retry', reason: 'server_error', retryAfterMs: parseRetryAfter(res.retryAfter, this.o.clock.now(), this.o.retryAfterMaxMs), countsForBreaker: true };
      }
      // Any other answer (404, 405, 415, ...) is a configuration problem, not a
      // problem of these lines: keep them, pause like an auth refusal.
      return { kind: 'auth', status: res.status, body: res.body };
    }
    return { kind: 'done' };
  }

  private probeSucceeded(): Outcome {
    // The probe went through: the caller closes the breaker and resumes full batches.
    return { kind: 'continue' };
  }

  private on400(c: Current, part: SpoolEntry[], res: PushResponse, replace: (next: SpoolEntry[][]) => void): void {
    const parsed = parseLokiError(res.body);
    const rejected: SpoolEntry[] = [];
    const rest: SpoolEntry[] = [];
    for (const e of part) (isRejected(e, parsed.rejections) ? rejected : rest).push(e);
    if (rejected.length > 0) {
      this.deadLetter(c, rejected, 'rejected', res);
      // Loki stored the valid ones; the rest goes once more to confirm (what
      // Loki has collapses: same stream, timestamp and line).
      replace(rest.length > 0 ? [rest] : []);
      return;
    }
    c.bisectRequests += 1;
    if (part.length === 1 || c.bisectRequests > this.o.maxBisectRequests) {
      this.deadLetter(c, part, 'rejected', res);
      replace([]);
      return;
    }
    // The rules name a second, not an entry: send the entries of that second on their own.
    const suspects = part.filter((e) => isSuspect(e, parsed.rejections));
    if (suspects.length > 0 && suspects.length < part.length) {
      replace([suspects, part.filter((e) => !isSuspect(e, parsed.rejections))]);
      return;
    }
    // A 400 that names no line of this part: halve it until the refused lines stand alone.
    const mid = Math.ceil(part.length / 2);
    replace([part.slice(0, mid), part.slice(mid)]);
  }

  private deadLetter(c: Current, entries: SpoolEntry[], reason: 'rejected' | 'too_large', res: PushResponse): void {
    c.deadLettered += entries.length;
    for (const e of entries) this.o.metrics.drop(reason, e.labels.level ?? 'unknown');
    this.o.deadLetter.write(entries, reason, res.status, res.body);
    this.o.report('warn', `loki transport: ${entries.length} line(s) refused by Loki (HTTP ${res.status}), dead-lettered: ${res.body.slice(0, 300)}`, false);
  }

  private noteDate(date: string | undefined): void {
    if (!date) return;
    const at = Date.parse(date);
    if (!Number.isNaN(at)) this.clockSkewSeconds = Math.round((this.o.clock.now() - at) / 1000);
  }
}

/**
 * One push per stream, in the spool's order within each stream. Loki 3.4.2
 * answers 204 to a push of several streams when its ingester refused one of
 * them (per-stream rate limit, entry too far behind), dropping those entries
 * silently; a push of one stream gets the 429/400 naming them
 * (test/fixtures/loki-3.4.2-errors.json: stream_rate_429, stream_rate_two_streams).
 */
export function byStream<E extends SpoolEntry>(entries: readonly E[]): E[][] {
  const groups = new Map<string, E[]>();
  for (const e of entries) {
    const key = labelsJsonOf(e);
    let g = groups.get(key);
    if (!g) {
      g = [];
      groups.set(key, g);
    }
    g.push(e);
  }
  return [...groups.values()];
}

function labelsJsonOf(e: SpoolEntry): string {
  return e instanceof StoredEntry ? e.labelsJson : JSON.stringify(e.labels);
}

/** Loki's JSON push body: one stream per label set, entries in spool order, structured metadata as the third element. */
export function buildPushBody(entries: readonly SpoolEntry[]): string {
  const streams = new Map<string, string[]>();
  for (const e of entries) {
    const key = labelsJsonOf(e);
    let values = streams.get(key);
    if (!values) {
      values = [];
      streams.set(key, values);
    }
    let line: string;
    let meta: string;
    if (e instanceof StoredEntry) {
      line = e.lineJson;
      meta = e.metaJson === '' ? '' : `,${e.metaJson}`;
    } else {
      line = JSON.stringify(e.line);
      meta = e.meta && Object.keys(e.meta).length > 0 ? `,${JSON.stringify(e.meta)}` : '';
    }
    values.push(`["${e.ts}",${line}${meta}]`);
  }
  const parts: string[] = [];
  for (const [labels, values] of streams) parts.push(`{"stream":${labels},"values":[${values.join(',')}]}`);
  return `{"streams":[${parts.join(',')}]}`;
}
