import { type BatchLimits, dueIn, encodeFitting, takeHead } from './batcher.js';
import { type RetryTimings, fullJitter, rateLimitDelay } from './backoff.js';
import type { TabChannel, TabMessage } from './channel.js';
import type { Encoder } from './encode.js';
import type { Rescue } from './rescue.js';
import type { LogEntry } from './entry.js';
import type { Level } from './levels.js';
import { type SendResult, classify } from './response.js';
import type { Sender } from './sender.js';
import type { DropReason, PendingBatch, Spool } from './spool-types.js';
import type { DeliveryEvent, TabStats } from './stats.js';

export interface FlusherConfig {
  limits: BatchLimits;
  waitMs: number;
  keepaliveMaxBytes: number;
  gzip: boolean;
  /**
   * Cross-origin (direct): a CORS preflight that does not allow Content-Encoding makes a gzip'd request fail with
   * no response; then the same batch goes once uncompressed, and if that one gets an answer gzip is off for the page.
   */
  gzipFallback: boolean;
  timings: RetryTimings;
  authRetryMs: number;
  /** This page's session: the identity of the batches it makes. */
  session: string;
  url: string;
  onDelivery: ((e: DeliveryEvent) => void) | undefined;
}

interface Batch {
  p: PendingBatch;
  entries: LogEntry[];
}

const GZIP_MIN_BYTES = 1024;
const OFFLINE_POLL_MS = 30_000;
const ERROR_PAUSE_MS = 1000;
const REMOTE_FLUSH_MS = 10_000;

function offline(): boolean {
  return typeof navigator !== 'undefined' && navigator.onLine === false;
}

const byKey = (a: LogEntry, b: LogEntry): number => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0);

/**
 * Moves lines from this tab into the spool, and (in the leader tab only) from
 * the spool to the target: oldest first, one request at a time, each batch
 * kept as a pending batch (same identity on every resend) until its answer.
 * When the page is hidden it sends what it can by keepalive, within the
 * keepalive budget; the rest waits in the spool for the next leader.
 */
export class Flusher {
  leader = false;
  private spool: Spool | undefined;
  private readonly spoolReady: Promise<Spool>;
  private queue: LogEntry[] = [];
  private scheduled = false;
  /** This tab's entries not yet confirmed written (queued or in the write transaction): no other tab can have sent them. */
  private readonly unconfirmed = new Map<string, LogEntry>();
  /** What this page's unload rescue record waits for: entry writes and batch records not yet confirmed. */
  private rescued = new Set<string>();
  private readonly rescuedBatches = new Map<string, PendingBatch>();
  /** Entry keys and batch keys in a request right now (this page). */
  private readonly inflight = new Set<string>();
  private readonly inflightBatches = new Set<string>();
  /** This page's stored batches whose last attempt failed: resent whole, same identity. */
  private readonly failed = new Map<string, Batch>();
  private readonly noKeepalive = new Set<string>();
  /**
   * Unsent entries this tab knows of, for the hide path: its own lines (kept
   * from the start: a tab that took the lock without waiting is the only one
   * that ever could send them) and, once leader, the spool's head.
   */
  private known = new Map<string, LogEntry>();
  private knownBytes = 0;
  private collecting: LogEntry[] | undefined;
  private others = { n: 0, b: 0 };
  private keepaliveBytes = 0;
  private seq = 0;
  private attempt = 0;
  private rateAttempt = 0;
  private waitUntil = 0;
  private limitEntries: number;
  private forced = 0;
  private forcedUntil = 0;
  private running = false;
  private closed = false;
  private authReported = false;
  private errorReported = false;
  /** gzip towards the target: unknown until a gzip'd request is answered (ok); probe: the next attempt goes uncompressed; off: refused. */
  private gzipState: 'unknown' | 'ok' | 'probe' | 'off' = 'unknown';
  private sleepTimer: ReturnType<typeof setTimeout> | undefined;
  private sleepUntil = Infinity;
  private sleepResolve: (() => void) | undefined;
  private wakeAtPending = Infinity;

  constructor(
    spool: Promise<Spool>,
    private readonly sender: Sender,
    private readonly encode: Encoder,
    private readonly cfg: FlusherConfig,
    readonly stats: TabStats,
    private readonly channel: TabChannel | undefined,
    private readonly rescue: Rescue | undefined,
    private readonly now: () => number = Date.now,
    private readonly random: () => number = Math.random,
  ) {
    this.limitEntries = cfg.limits.maxEntries;
    this.spoolReady = spool.then(async (s) => {
      await this.restoreRescued(s);
      this.spool = s;
      this.stats.spoolKind = s.kind;
      this.commit();
      return s;
    });
  }

  /** Puts back what pages that went away left in the unload rescue (before anything reads the spool). */
  private async restoreRescued(s: Spool): Promise<void> {
    if (!this.rescue) return;
    for (const { key, record } of this.rescue.all()) {
      try {
        await s.restore(record.entries, record.pendings);
        this.rescue.drop([key]);
      } catch {
        /* kept for the next load */
      }
    }
  }

  // ---- this tab's lines into the spool ----

  enqueue(e: LogEntry): void {
    this.queue.push(e);
    this.unconfirmed.set(e.k, e);
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(() => this.commit());
    }
  }

  private commit(): void {
    this.scheduled = false;
    const spool = this.spool;
    if (!spool || this.queue.length === 0) return;
    const entries = this.queue;
    this.queue = [];
    this.write(spool, entries, []);
  }

  /** One transaction (opened now: ordered before anything later): the entries, and pending batches made of them. */
  private write(spool: Spool, entries: LogEntry[], pendings: PendingBatch[]): void {
    for (const e of entries) this.noteKnown(e);
    spool.append(entries, pendings).then(
      (r) => {
        this.confirmed(entries, pendings);
        for (const k of r.refused) this.dropKnown(k);
        if (entries.length === 0) return;
        if (this.leader) this.wakeForSize();
        else this.channel?.post({ t: 'appended', n: entries.length, b: entries.reduce((n, e) => n + e.b, 0) });
      },
      (err: unknown) => {
        this.confirmed(entries, pendings);
        this.stats.quotaDropped += entries.length;
        this.stats.lastError = String(err);
        for (const e of entries) this.dropKnown(e.k);
        this.reportOnce(`pos-logger: the spool refused ${entries.length} line(s): ${String(err)}`);
      },
    );
  }

  private confirmed(entries: readonly LogEntry[], pendings: readonly PendingBatch[]): void {
    for (const e of entries) {
      this.unconfirmed.delete(e.k);
      this.rescued.delete(e.k);
    }
    for (const p of pendings) this.rescuedBatches.delete(p.key);
    if (this.rescue && this.rescued.size === 0 && this.rescuedBatches.size === 0) this.rescue.clear(this.cfg.session);
  }

  countDrop(reason: DropReason, level: Level): void {
    void this.spoolReady.then((s) => s.count(reason, level, 1)).catch(() => undefined);
  }

  private noteKnown(e: LogEntry): void {
    this.collecting?.push(e);
    if (this.known.has(e.k)) return;
    if (this.known.size > 0 && this.knownBytes + e.b > this.cfg.keepaliveMaxBytes * 2) return;
    this.known.set(e.k, e);
    this.knownBytes += e.b;
  }

  private dropKnown(k: string): void {
    const e = this.known.get(k);
    if (!e) return;
    this.known.delete(k);
    this.knownBytes -= e.b;
  }

  private resetKnown(head: readonly LogEntry[], collected: readonly LogEntry[]): void {
    this.known = new Map();
    this.knownBytes = 0;
    this.others = { n: 0, b: 0 };
    for (const e of head) this.noteKnown(e);
    for (const e of collected) if (!this.inflight.has(e.k)) this.noteKnown(e);
  }

  private wakeForSize(): void {
    if (this.known.size + this.others.n >= this.limitEntries || this.knownBytes + this.others.b >= this.cfg.limits.maxBytes) this.wake();
    else this.wakeAt(this.now() + this.cfg.waitMs);
  }

  onMessage(m: TabMessage): void {
    if (!this.leader) return;
    if (m.t === 'flush') {
      this.forcedUntil = this.now() + REMOTE_FLUSH_MS;
      this.wake();
      return;
    }
    this.others.n += m.n;
    this.others.b += m.b;
    this.wakeForSize();
  }

  // ---- the leader's loop ----

  /**
   * `waited`: another tab held the lock since this page started, so it may
   * have sent some of this tab's lines: forget them until the spool is read.
   */
  becomeLeader(waited: boolean): void {
    if (this.closed) return;
    if (waited) this.resetKnown([], []);
    this.leader = true;
    this.stats.leader = true;
    if (this.running) return;
    this.running = true;
    void this.spoolReady.then(() => this.loop());
  }

  onOnline(): void {
    if (this.stats.pauseReason === 'backoff' || this.stats.pauseReason === 'none') {
      this.waitUntil = 0;
      this.attempt = 0;
      this.setPause('none', 0);
    }
    this.wake();
  }

  private async loop(): Promise<void> {
    while (this.leader && !this.closed) {
      const spool = this.spool as Spool;
      try {
        const now = this.now();
        if (this.waitUntil > now) {
          await this.sleep(this.waitUntil - now);
          continue;
        }
        if (offline()) {
          await this.sleep(OFFLINE_POLL_MS);
          continue;
        }
        // A stored batch first (an earlier failure, or a page that went away): whole, same identity.
        const stored = (await spool.pendings()).filter((p) => !this.inflightBatches.has(p.key));
        const first = stored[0];
        if (first) {
          const entries = (await spool.loadPending(first)).filter((e) => !this.inflight.has(e.k));
          if (this.inflightBatches.has(first.key)) continue;
          if (entries.length === 0) {
            await spool.forget(first.key);
            this.failed.delete(first.key);
            continue;
          }
          await this.deliver(first, entries, false);
          continue;
        }
        const collected: LogEntry[] = [];
        this.collecting = collected;
        let head: { entries: LogEntry[]; full: boolean };
        try {
          head = await spool.head({ maxEntries: this.limitEntries, maxBytes: this.cfg.limits.maxBytes }, this.inflight);
        } finally {
          this.collecting = undefined;
        }
        const fresh = head.entries.filter((e) => !this.inflight.has(e.k));
        this.resetKnown(fresh, collected);
        const forced = this.forced > 0 || this.forcedUntil > this.now();
        const wait = dueIn(fresh, head.full, this.now(), this.cfg.waitMs, forced);
        if (wait === Infinity) {
          await this.sleep(Math.max(1000, this.cfg.waitMs));
          continue;
        }
        if (wait > 0) {
          await this.sleep(wait);
          continue;
        }
        await this.deliver(this.newPending(), fresh, true);
      } catch (err) {
        this.stats.lastError = String(err);
        this.reportOnce(`pos-logger: spool error: ${String(err)}`);
        await this.sleep(ERROR_PAUSE_MS);
      }
    }
    this.running = false;
  }

  private newPending(): PendingBatch {
    const batch = this.seq;
    this.seq += 1;
    return { key: `${this.cfg.session}:${batch}`, session: this.cfg.session, batch, keys: [], at: this.now() };
  }

  private mark(b: Batch): void {
    this.inflightBatches.add(b.p.key);
    for (const e of b.entries) this.inflight.add(e.k);
  }

  private unmark(p: PendingBatch, entries: readonly LogEntry[]): void {
    this.inflightBatches.delete(p.key);
    for (const e of entries) this.inflight.delete(e.k);
  }

  private async deliver(p: PendingBatch, entries: LogEntry[], isNew: boolean): Promise<void> {
    const spool = this.spool as Spool;
    let enc = encodeFitting(entries, this.cfg.limits.maxBytes, this.encode, p, this.now());
    let batch: Batch = { p: { ...p, keys: enc.entries.map((e) => e.k) }, entries: enc.entries };
    this.mark(batch);
    if (isNew) {
      let kept: LogEntry[];
      try {
        kept = await spool.savePending(batch.p);
      } catch (err) {
        this.unmark(batch.p, batch.entries);
        throw err;
      }
      if (kept.length !== batch.entries.length) {
        // The byte cap removed some between the read and now.
        this.unmark(batch.p, batch.entries);
        if (kept.length === 0) return;
        enc = encodeFitting(kept, this.cfg.limits.maxBytes, this.encode, batch.p, this.now());
        batch = { p: { ...batch.p, keys: enc.entries.map((e) => e.k) }, entries: enc.entries };
        this.mark(batch);
      }
    }
    const size = enc.body.length;
    const keepalive = !this.noKeepalive.has(p.key) && size <= this.cfg.keepaliveMaxBytes - this.keepaliveBytes;
    this.stats.requests += 1;
    if (keepalive) {
      this.stats.keepaliveRequests += 1;
      this.keepaliveBytes += size;
    }
    const gzip = this.cfg.gzip && size >= GZIP_MIN_BYTES && this.gzipState !== 'probe' && this.gzipState !== 'off';
    if (gzip) this.stats.gzipRequests += 1;
    let res: SendResult;
    try {
      res = await this.sender.send(enc.body, { keepalive, gzip });
    } finally {
      if (keepalive) this.keepaliveBytes -= size;
    }
    // A keepalive request can fail on the browser's budget (shared with other tabs): the retry goes without.
    if (keepalive && res.status === null) this.noKeepalive.add(p.key);
    else if (res.status !== null) this.noKeepalive.delete(p.key);
    if (this.cfg.gzip && this.cfg.gzipFallback) this.noteGzip(gzip, res);
    await this.settle(batch, res, keepalive, gzip);
  }

  /**
   * What a request says about gzip towards a cross-origin target. A preflight refusing Content-Encoding looks to the
   * page like a network error (status null, at once), so: a gzip'd request with no response before gzip was ever
   * answered makes the next attempt (the same batch: failed batches go first) uncompressed; an answer to that one
   * turns gzip off for this page load. If it gets no answer either, the network is down: gzip is tried again. (A wrong
   * guess, an outage ending between the two attempts, only costs compression for this page load.)
   */
  private noteGzip(gzip: boolean, res: SendResult): void {
    if (gzip) {
      if (res.status !== null) this.gzipState = 'ok';
      else if (!res.timedOut && this.gzipState === 'unknown') this.gzipState = 'probe';
      return;
    }
    if (this.gzipState !== 'probe') return;
    if (res.status === null) {
      this.gzipState = 'unknown';
      return;
    }
    this.gzipState = 'off';
    this.stats.gzipRefused = true;
    console.warn(`pos-logger: ${this.cfg.url} took no gzip'd request (its CORS preflight does not allow Content-Encoding): sending uncompressed`);
  }

  private setPause(reason: TabStats['pauseReason'], until: number): void {
    this.stats.pauseReason = reason;
    this.stats.pausedUntil = until;
  }

  private async settle(b: Batch, res: SendResult, keepalive: boolean, gzip: boolean): Promise<void> {
    const now = this.now();
    const n = b.entries.length;
    const o = classify(res, n, now);
    const st = this.stats;
    const label = res.status === null ? (res.timedOut ? 'timeout' : 'network') : String(res.status);
    st.statuses[label] = (st.statuses[label] ?? 0) + 1;
    st.lastStatus = res.status;
    st.lastRetryAfter = res.retryAfter;
    if (res.error) st.lastError = res.error;
    let waitMs = 0;
    const spool = this.spool as Spool;
    try {
      switch (o.kind) {
        case 'ok':
          await spool.complete(b.p);
          st.sent += n;
          if (keepalive) st.keepaliveSent += n;
          st.relayDropped += o.relayDropped;
          if (o.duplicate) st.duplicates += 1;
          this.attempt = 0;
          this.rateAttempt = 0;
          this.authReported = false;
          this.limitEntries = this.cfg.limits.maxEntries;
          if (this.waitUntil <= now) this.setPause('none', 0);
          break;
        case 'retry':
          st.retries += 1;
          waitMs = fullJitter(this.attempt, this.cfg.timings.backoffBaseMs, this.cfg.timings.backoffMaxMs, this.random);
          this.attempt += 1;
          this.waitUntil = now + waitMs;
          this.setPause('backoff', this.waitUntil);
          break;
        case 'rate':
          st.retries += 1;
          st.rateLimited += 1;
          waitMs = rateLimitDelay(o.retryAfterMs, this.rateAttempt, this.cfg.timings, this.random);
          this.rateAttempt += 1;
          this.waitUntil = now + waitMs;
          this.setPause('rate', this.waitUntil);
          break;
        case 'pause':
          st.authErrors += 1;
          waitMs = this.cfg.authRetryMs;
          this.waitUntil = now + waitMs;
          this.setPause('auth', this.waitUntil);
          if (!this.authReported) {
            this.authReported = true;
            console.error(`pos-logger: ${this.cfg.url} answered ${o.status}; lines are kept and one retry is made every ${Math.round(waitMs / 1000)} s (check the credential or the route)`);
          }
          break;
        case 'split':
          await spool.forget(b.p.key);
          this.limitEntries = Math.max(1, Math.floor(n / 2));
          break;
        case 'reject':
          await spool.complete(b.p, o.status === 413 ? 'too_large' : 'rejected');
          console.warn(`pos-logger: ${this.cfg.url} refused a line for good (${o.status}); dropped and counted`);
          break;
      }
    } finally {
      this.unmark(b.p, b.entries);
      for (const e of b.entries) this.dropKnown(e.k);
      if (o.kind === 'retry' || o.kind === 'rate' || o.kind === 'pause') this.failed.set(b.p.key, b);
      else this.failed.delete(b.p.key);
    }
    const event: DeliveryEvent = { status: res.status, outcome: o.kind, retryAfter: res.retryAfter, waitMs, entries: n, keepalive, gzip };
    if (res.error !== undefined) event.error = res.error;
    if (o.kind === 'ok' && o.duplicate) event.duplicate = true;
    try {
      this.cfg.onDelivery?.(event);
    } catch {
      /* the app's callback */
    }
    if (o.kind === 'ok' || o.kind === 'split' || o.kind === 'reject') this.wake();
  }

  // ---- the page is being hidden ----

  /**
   * Sends by keepalive what can go within the budget left, oldest first: in
   * every tab its own lines not yet confirmed written (a page that logs and
   * navigates away at once may lose its last write transaction; no other tab
   * has sent them), in the leader also its failed batches and its copy of the
   * spool's head. Writes the queued lines and the batches' identities in one
   * transaction, so whatever is not answered before the page dies is resent
   * as the same batch by the next leader.
   */
  onHide(): void {
    if (this.closed) return;
    const queued = this.queue;
    this.queue = [];
    this.scheduled = false;
    const now = this.now();
    const held = (this.stats.pauseReason === 'rate' || this.stats.pauseReason === 'auth') && this.waitUntil > now;
    const batches: Batch[] = [];
    const bodies: Uint8Array[] = [];
    if (!offline() && !held && this.cfg.keepaliveMaxBytes > 0) {
      let budget = this.cfg.keepaliveMaxBytes - this.keepaliveBytes;
      const maxBytes = (): number => Math.min(this.cfg.limits.maxBytes, budget);
      if (this.leader) {
        for (const f of this.failed.values()) {
          if (this.inflightBatches.has(f.p.key)) continue;
          const enc = encodeFitting(f.entries, this.cfg.limits.maxBytes, this.encode, f.p, now);
          if (enc.entries.length !== f.entries.length || enc.body.length > budget) break; // a stored batch goes whole or not at all
          budget -= enc.body.length;
          batches.push(f);
          bodies.push(enc.body);
          this.mark(f);
        }
      }
      const seen = new Set<string>();
      const cands: LogEntry[] = [];
      if (this.leader) {
        for (const e of this.known.values()) {
          if (this.inflight.has(e.k)) continue;
          cands.push(e);
          seen.add(e.k);
        }
      }
      for (const e of this.unconfirmed.values()) if (!seen.has(e.k) && !this.inflight.has(e.k)) cands.push(e);
      cands.sort(byKey);
      while (cands.length > 0 && budget > 512) {
        const p = this.newPending();
        const { taken } = takeHead(cands, { maxEntries: this.cfg.limits.maxEntries, maxBytes: maxBytes() });
        const enc = encodeFitting(taken, maxBytes(), this.encode, p, now);
        if (enc.body.length > budget) break;
        budget -= enc.body.length;
        const b: Batch = { p: { ...p, keys: enc.entries.map((e) => e.k) }, entries: enc.entries };
        batches.push(b);
        bodies.push(enc.body);
        this.mark(b);
        cands.splice(0, enc.entries.length);
      }
    }
    const fresh = batches.filter((b) => !this.failed.has(b.p.key)).map((b) => b.p);
    // The writes not yet confirmed, and the one about to record these batches, may be aborted with the page:
    // keep the lines and the batches' identities in the rescue too (the next load resends them as the same batches).
    // A second hide (pagehide after visibilitychange) rewrites the record: it keeps the earlier batches not yet recorded.
    for (const p of fresh) this.rescuedBatches.set(p.key, p);
    if (this.rescue && (this.unconfirmed.size > 0 || this.rescuedBatches.size > 0)) {
      const list = [...this.unconfirmed.values()].sort(byKey);
      if (this.rescue.save(this.cfg.session, list, [...this.rescuedBatches.values()])) this.rescued = new Set(list.map((e) => e.k));
    }
    if (queued.length > 0 || fresh.length > 0) {
      if (this.spool) this.write(this.spool, queued, fresh);
      else void this.spoolReady.then((s) => this.write(s, queued, fresh));
    }
    batches.forEach((b, i) => {
      const body = bodies[i] as Uint8Array;
      this.stats.requests += 1;
      this.stats.keepaliveRequests += 1;
      this.keepaliveBytes += body.length;
      void this.sender
        .send(body, { keepalive: true, gzip: false })
        .then(async (res) => {
          this.keepaliveBytes -= body.length;
          await this.spoolReady;
          await this.settle(b, res, true, false);
        })
        .catch(() => undefined);
    });
  }

  // ---- flush, sleep, close ----

  /** Resolves true once the spool is empty (every tab's lines answered), false at the deadline. */
  async flush(timeoutMs: number): Promise<boolean> {
    const end = this.now() + timeoutMs;
    this.forced += 1;
    try {
      this.commit();
      if (this.leader) this.wake();
      else this.channel?.post({ t: 'flush' });
      const spool = await Promise.race([this.spoolReady, new Promise<undefined>((r) => setTimeout(() => r(undefined), timeoutMs))]);
      if (!spool) return false;
      for (;;) {
        const s = await spool.state();
        if (s.entries === 0 && this.queue.length === 0) return true;
        if (this.now() >= end) return false;
        await new Promise((r) => setTimeout(r, 25));
      }
    } finally {
      this.forced -= 1;
    }
  }

  wake(): void {
    this.wakeAt(this.now());
  }

  private wakeAt(t: number): void {
    if (!this.sleepResolve) {
      this.wakeAtPending = Math.min(this.wakeAtPending, t);
      return;
    }
    if (t >= this.sleepUntil) return;
    if (t <= this.now()) this.endSleep();
    else this.armSleep(t);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.sleepResolve = resolve;
      const until = Math.min(this.now() + ms, this.wakeAtPending);
      this.wakeAtPending = Infinity;
      if (until <= this.now()) this.endSleep();
      else this.armSleep(until);
    });
  }

  private armSleep(until: number): void {
    if (this.sleepTimer !== undefined) clearTimeout(this.sleepTimer);
    this.sleepUntil = until;
    this.sleepTimer = setTimeout(() => this.endSleep(), Math.max(0, until - this.now()));
  }

  private endSleep(): void {
    if (this.sleepTimer !== undefined) clearTimeout(this.sleepTimer);
    this.sleepTimer = undefined;
    this.sleepUntil = Infinity;
    const r = this.sleepResolve;
    this.sleepResolve = undefined;
    r?.();
  }

  private reportOnce(message: string): void {
    if (this.errorReported) return;
    this.errorReported = true;
    console.warn(message);
  }

  close(): void {
    this.commit();
    this.closed = true;
    this.leader = false;
    this.stats.leader = false;
    this.endSleep();
  }

  async spoolHandle(): Promise<Spool> {
    return this.spoolReady;
  }
}
