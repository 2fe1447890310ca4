import { captureErrors } from './capture.js';
import { TabChannel } from './channel.js';
import { toConsole } from './console-sink.js';
import { lokiEncoder, relayEncoder } from './encode.js';
import { type Context, type EntryStatics, buildEntry } from './entry.js';
import { Flusher } from './flusher.js';
import { IdbSpool } from './idb-spool.js';
import { randomId } from './ids.js';
import { Rescue } from './rescue.js';
import { type Level, atLeast } from './levels.js';
import { type Leadership, electLeader } from './lock.js';
import { MemorySpool } from './memory-spool.js';
import { type PosLoggerOptions, type ResolvedOptions, resolveOptions } from './options.js';
import { Sender, canGzip } from './sender.js';
import type { Spool } from './spool-types.js';
import { type LoggerStats, type TabStats, newTabStats } from './stats.js';
import { NanoClock, entryKey } from './timestamp.js';
import { watchPageLifecycle } from './unload.js';
import { base64Utf8 } from './utf8.js';

/** Bound of the unload rescue in localStorage (lines not yet confirmed written when the page is hidden). */
const RESCUE_MAX_BYTES = 512 * 1024;

function openSpool(o: ResolvedOptions): Promise<Spool> {
  if (typeof indexedDB === 'undefined') return Promise.resolve(new MemorySpool(o.spoolMaxBytes));
  return IdbSpool.open(o.dbName, o.spoolMaxBytes).catch((err: unknown) => {
    console.warn(`pos-logger: IndexedDB unavailable (${String(err)}); lines are kept in memory only`);
    return new MemorySpool(o.spoolMaxBytes);
  });
}

/** The POS frontend's logger: see README.md for the options and what happens to a line. */
export class PosLogger {
  /** This page load's id (metadata `session`; the relay's batch session). */
  readonly session = randomId(16);
  private readonly o: ResolvedOptions;
  private readonly clock = new NanoClock();
  private readonly tab: TabStats = newTabStats();
  private readonly flusher: Flusher;
  private readonly leadership: Leadership;
  private readonly channel: TabChannel;
  private readonly cleanups: (() => void)[] = [];
  private readonly base: Record<string, string> = {};
  private closed = false;

  constructor(options: PosLoggerOptions = {}) {
    this.o = resolveOptions(options, canGzip(), base64Utf8);
    const o = this.o;
    this.base.session = this.session;
    if (o.terminal) this.base.terminal_id = o.terminal;
    if (o.user) this.base.user_id = o.user;
    this.channel = new TabChannel(o.dbName, (m) => this.flusher.onMessage(m));
    const sender = new Sender({ url: o.url, headers: o.headers, credentials: o.credentials, timeoutMs: o.requestTimeoutMs });
    const encode = o.target === 'direct' ? lokiEncoder(o.labels) : relayEncoder(o.service);
    this.flusher = new Flusher(
      openSpool(o),
      sender,
      encode,
      {
        limits: { maxEntries: o.batchMaxEntries, maxBytes: o.batchMaxBytes },
        waitMs: o.batchWaitMs,
        keepaliveMaxBytes: o.keepaliveMaxBytes,
        gzip: o.gzip,
        gzipFallback: o.target === 'direct',
        timings: { backoffBaseMs: o.backoffBaseMs, backoffMaxMs: o.backoffMaxMs, retryAfterMaxMs: o.retryAfterMaxMs, rateLimitFallbackMs: o.rateLimitFallbackMs },
        authRetryMs: o.authRetryMs,
        session: this.session,
        url: o.url,
        onDelivery: o.onDelivery,
      },
      this.tab,
      this.channel,
      new Rescue(o.dbName, RESCUE_MAX_BYTES),
    );
    this.leadership = electLeader(`${o.dbName}:sender`, (waited) => this.flusher.becomeLeader(waited));
    this.tab.locked = this.leadership.locked;
    if (typeof window !== 'undefined' && typeof document !== 'undefined') {
      this.cleanups.push(watchPageLifecycle(() => this.flusher.onHide(), () => this.flusher.wake()));
      const online = (): void => this.flusher.onOnline();
      addEventListener('online', online);
      this.cleanups.push(() => removeEventListener('online', online));
      if (o.captureErrors) {
        this.cleanups.push(
          captureErrors(window, (m, e, c) => this.write('error', m, e, true, c, false), o.captureMaxPerMinute, () => this.flusher.countDrop('capture_rate', 'error')),
        );
      }
    }
  }

  debug(message: string, context?: Context): void {
    this.write('debug', message, undefined, false, context, true);
  }

  info(message: string, context?: Context): void {
    this.write('info', message, undefined, false, context, true);
  }

  warn(message: string, context?: Context): void {
    this.write('warn', message, undefined, false, context, true);
  }

  /** `error` is what was thrown (an Error, or anything); pass undefined to give context only. */
  error(message: string, error?: unknown, context?: Context): void {
    this.write('error', message, error, error !== undefined, context, true);
  }

  /** Metadata `user_id` of the lines that follow (undefined: none). */
  setUser(user: string | undefined): void {
    if (user) this.base.user_id = user;
    else delete this.base.user_id;
  }

  /** Metadata `terminal_id` of the lines that follow. */
  setTerminal(terminal: string | undefined): void {
    if (terminal) this.base.terminal_id = terminal;
    else delete this.base.terminal_id;
  }

  /** Sends now without waiting for fuller batches; true once every tab's lines are answered, false at the deadline. */
  flush(timeoutMs = 10_000): Promise<boolean> {
    return this.flusher.flush(timeoutMs);
  }

  /** This tab's counters and the shared spool's state. */
  async stats(): Promise<LoggerStats> {
    const spool = await (await this.flusher.spoolHandle()).state();
    return { ...structuredClone(this.tab), spool };
  }

  /** Removes the listeners, gives the sender role to another tab, closes the spool. Lines not sent stay in it. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const c of this.cleanups.splice(0)) c();
    this.flusher.close();
    this.leadership.release();
    this.channel.close();
    const spool = await this.flusher.spoolHandle();
    await new Promise((r) => setTimeout(r, 0));
    spool.close();
  }

  private write(level: Level, message: string, error: unknown, hasError: boolean, context: Context | undefined, echo: boolean): void {
    if (this.closed) return;
    try {
      const o = this.o;
      if (echo && o.consoleLevel !== undefined && atLeast(level, o.consoleLevel)) toConsole(level, message, error, hasError, context);
      if (!atLeast(level, o.level)) return;
      const ts = this.clock.next();
      const meta: Record<string, string> = { ...this.base };
      if (o.page && typeof location !== 'undefined') meta.page = location.pathname;
      const statics: EntryStatics = { session: this.session, meta, metadataKeys: o.metadataKeys, maxLineBytes: o.maxLineBytes };
      this.tab.logged += 1;
      this.flusher.enqueue(buildEntry(level, String(message), error, hasError, context, ts, entryKey(ts, this.session), statics));
    } catch {
      /* a logger never throws into the app */
    }
  }
}

/** Makes the logger (one per page). */
export function createLogger(options?: PosLoggerOptions): PosLogger {
  return new PosLogger(options);
}
