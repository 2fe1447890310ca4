import { readFileSync } from 'node:fs';
import TransportStream from 'winston-transport';
import { bundleFromEnv, loadBundle, type StoreBundle } from './bundle';
import { systemClock, type Clock, type TimerHandle } from './clock';
import { DeadLetter } from './deadletter';
import { PushClient } from './http';
import { LabelGuard } from './labels';
import { TransportMetrics, DROP_REASONS, type MetricsSnapshot } from './metrics';
import { resolveOptions, type LokiTransportOptions, type ResolvedOptions } from './options';
import { Shipper } from './shipper';
import { Spool, type AppendResult, type Priority } from './spool';
import { TimestampSource } from './timestamp';

const MESSAGE = Symbol.for('message');
const VERSION = '0.1.0';

export interface ShutdownReport {
  /** True when the spool was empty at the end (everything delivered or dead-lettered). */
  drained: boolean;
  /** Bytes left in the spool for the next start. */
  spoolBytes: number;
  elapsedMs: number;
}

/** One line handed to the transport outside winston (the relay, the heartbeat). */
export interface RawEntry {
  level: string;
  line: string;
  /** Nanoseconds since the epoch; default: now, with the tie-break. */
  ts?: bigint;
  meta?: Record<string, string> | undefined;
  labels?: Record<string, unknown> | undefined;
  /** Label overrides (the relay sets `service`). */
  override?: Record<string, string>;
  priority?: Priority;
}

/**
 * The winston transport. Every log call is appended to the disk spool
 * synchronously (no network I/O in the log path); a background loop ships the
 * spool to Loki. See the package README for the guarantees.
 */
export class LokiTransport extends TransportStream {
  readonly metrics = new TransportMetrics();
  readonly options: ResolvedOptions;
  readonly instance: string;
  private bundleValue: StoreBundle;
  private readonly clock: Clock;
  private readonly spool: Spool;
  private readonly shipper: Shipper;
  private readonly client: PushClient;
  private readonly guard: LabelGuard;
  private readonly timestamps: TimestampSource;
  private readonly metadataKeys: Map<string, string>;
  private readonly onError: (level: 'error' | 'warn', message: string) => void;
  private heartbeatTimer: TimerHandle | undefined;
  private readonly startedAt: number;
  private lastDropped = 0;
  private shutdownPromise: Promise<ShutdownReport> | undefined;
  private reporting = false;

  constructor(options: LokiTransportOptions) {
    super(options.level ? { level: options.level } : {});
    const o = resolveOptions(options);
    this.options = o;
    this.clock = options.clock ?? systemClock;
    const random = options.random ?? Math.random;
    this.onError = options.onError ?? ((level, message) => process.stderr.write(`${new Date().toISOString()} ${level} ${message}\n`));
    this.bundleValue = o.bundle ?? (o.bundlePath ? loadBundle(o.bundlePath) : bundleFromEnv(process.env, 'environment'));
    this.instance = o.instance;
    this.startedAt = this.clock.now();
    this.timestamps = new TimestampSource(this.clock);
    this.metadataKeys = new Map();
    for (const key of o.metadataKeys) {
      this.metadataKeys.set(key, key);
      this.metadataKeys.set(key.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase()), key);
    }
    this.guard = new LabelGuard({
      base: { ...o.labels, store: this.bundleValue.storeId, service: o.service, environment: o.environment, instance: o.instance },
      dynamicKeys: o.dynamicLabels,
      maxValuesPerKey: o.maxLabelValues,
    });
    this.spool = new Spool({
      dir: o.spoolDir,
      maxBytes: o.spoolMaxBytes,
      segmentBytes: o.segmentBytes,
      fsyncIntervalMs: o.fsyncIntervalMs,
      dropDebugAt: o.dropDebugAt,
      dropInfoAt: o.dropInfoAt,
      diskRetryMs: o.diskRetryMs,
      clock: this.clock,
      onDrop: (reason, level, count) => this.metrics.drop(reason, level, count),
      onError: (err) => this.report('error', `loki transport: spool: ${err.message}`, false),
    });
    this.spool.open();
    const ca = o.ca ?? (o.caFile ? readFileSync(o.caFile) : undefined);
    this.client = new PushClient({
      url: this.bundleValue.pushUrl,
      credentials: () => ({ username: this.bundleValue.username, password: this.bundleValue.password }),
      ca,
      connectTo: o.connectTo,
      timeoutMs: o.requestTimeoutMs,
      gzipLevel: o.gzipLevel,
      userAgent: `obs-loki-transport/${VERSION} node/${process.versions.node}`,
      clock: this.clock,
    });
    const deadLetter = new DeadLetter(o.spoolDir, o.deadLetterMaxBytes, (err) => this.report('error', `loki transport: dead letter: ${err.message}`, false));
    this.shipper = new Shipper({
      spool: this.spool,
      client: this.client,
      metrics: this.metrics,
      deadLetter,
      clock: this.clock,
      random,
      batchMaxLines: o.batchMaxLines,
      batchMaxBytes: o.batchMaxBytes,
      batchWaitMs: o.batchWaitMs,
      probeLines: o.probeLines,
      startupJitterMs: o.startupJitterMs,
      backoffBaseMs: o.backoffBaseMs,
      backoffMaxMs: o.backoffMaxMs,
      retryAfterMaxMs: o.retryAfterMaxMs,
      authRetryMs: o.authRetryMs,
      breakerFailures: o.breakerFailures,
      breakerOpenMs: o.breakerOpenMs,
      breakerMaxOpenMs: o.breakerMaxOpenMs,
      maxBisectRequests: o.maxBisectRequests,
      report: (level, message, spool) => this.report(level, message, spool),
      reloadCredentials: () => this.reloadBundle(),
      onBreaker: (from, to) => this.emit('breaker', from, to),
    });
    this.metrics.gauges = () => ({
      spoolBytes: this.spool.bytes,
      spoolOldestAgeSeconds: this.oldestAgeSeconds(),
      breakerState: this.shipper.state,
      clockSkewSeconds: this.shipper.clockSkewSeconds,
      clockBackwardSteps: this.timestamps.backwardSteps,
    });
    this.shipper.start();
    if (o.heartbeatIntervalMs > 0) {
      this.heartbeat();
      this.armHeartbeat();
    }
  }

  get bundle(): StoreBundle {
    return this.bundleValue;
  }

  /** winston-transport entry point. */
  override log(info: Record<string | symbol, unknown>, next: () => void): void {
    this.logInfo(info);
    next();
  }

  /** Appends one winston info object; returns what the spool did with it. */
  logInfo(info: Record<string | symbol, unknown>): AppendResult {
    const level = stripColors(typeof info.level === 'string' ? info.level : 'info');
    const formatted = info[MESSAGE];
    let meta: Record<string, string> | undefined;
    for (const [k, v] of Object.entries(info)) {
      const key = this.metadataKeys.get(k);
      if (key !== undefined && v !== undefined && v !== null && v !== '') {
        meta ??= {};
        meta[key] = String(v);
      }
    }
    let line: string;
    if (typeof formatted === 'string') line = formatted;
    else {
      const { labels: _labels, ...rest } = info as Record<string, unknown>;
      void _labels;
      line = safeJson({ ...rest, level });
    }
    const labels = isRecord(info.labels) ? info.labels : undefined;
    return this.append({ level, line, meta, labels });
  }

  /** Appends one entry (used by the relay and the heartbeat; usable directly). */
  append(entry: RawEntry): AppendResult {
    const ts = entry.ts ?? this.timestamps.next();
    const { labels, refused } = this.guard.resolve(entry.level, entry.labels, entry.override);
    const meta = refused ? { ...refused, ...entry.meta } : entry.meta;
    const priority = entry.priority ?? this.options.levelPriority[entry.level] ?? 1;
    const result = this.spool.append({ ts: ts.toString(), labels, line: entry.line, meta }, priority, entry.level);
    if (result === 'ok') this.shipper.wake();
    return result;
  }

  /** Next timestamp of this process (nanoseconds, strictly increasing). */
  now(): bigint {
    return this.timestamps.next();
  }

  /** Writes what is pending to disk now; returns the number of lines a write error dropped. */
  flushToDisk(): number {
    return this.spool.flush();
  }

  get failingClosed(): boolean {
    return this.spool.failingClosed;
  }

  get labelsRefused(): number {
    return this.guard.refused;
  }

  snapshot(): MetricsSnapshot {
    return this.metrics.snapshot();
  }

  /** The transport's metrics in the Prometheus text format. */
  prometheus(): string {
    const text = this.metrics.prometheus({ store: this.bundleValue.storeId, service: this.options.service, instance: this.instance });
    return `${text}# HELP loki_transport_labels_refused_total Label keys or values refused by the cardinality guard (sent as metadata).\n# TYPE loki_transport_labels_refused_total counter\nloki_transport_labels_refused_total{store="${this.bundleValue.storeId}",service="${this.options.service}",instance="${this.instance}"} ${this.guard.refused}\n`;
  }

  /** Resolves when the spool is empty, or with false after `timeoutMs`. */
  async flush(timeoutMs = 30000): Promise<boolean> {
    let timer: TimerHandle | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = this.clock.setTimeout(() => resolve(false), timeoutMs);
    });
    const result = await Promise.race([this.shipper.idle().then(() => true), timeout]);
    if (timer) this.clock.clearTimeout(timer);
    return result && this.spool.isEmpty;
  }

  /**
   * Stops within `timeoutMs`: delivers what it can until then, keeps the
   * rest on disk for the next start. Idempotent. No process signal is hooked:
   * NestJS calls this from beforeApplicationShutdown.
   */
  shutdown(timeoutMs = this.options.shutdownTimeoutMs): Promise<ShutdownReport> {
    this.shutdownPromise ??= (async () => {
      const start = Date.now();
      if (this.heartbeatTimer) this.clock.clearTimeout(this.heartbeatTimer);
      this.heartbeatTimer = undefined;
      await this.shipper.stop(timeoutMs);
      const spoolBytes = this.spool.bytes;
      this.spool.close();
      this.client.close();
      return { drained: spoolBytes === 0, spoolBytes, elapsedMs: Date.now() - start };
    })();
    return this.shutdownPromise;
  }

  override close(): void {
    void this.shutdown();
  }

  /** Appends the heartbeat line now (also done every heartbeatIntervalMs). */
  heartbeat(): void {
    const s = this.metrics.snapshot();
    const body: Record<string, string | number> = {
      type: 'heartbeat',
      v: 1,
      unix: Math.floor(this.clock.now() / 1000),
      uptime_s: Math.floor((this.clock.now() - this.startedAt) / 1000),
      sent_total: s.sent,
      dropped_total: s.droppedTotal,
      dropped_since_last: s.droppedTotal - this.lastDropped,
    };
    for (const reason of DROP_REASONS) body[`dropped_${reason}`] = s.dropped[reason];
    Object.assign(body, {
      retries_total: s.retriesTotal,
      spool_bytes: s.spoolBytes,
      spool_oldest_age_s: s.spoolOldestAgeSeconds,
      breaker: s.breakerState,
      clock_skew_s: s.clockSkewSeconds,
      labels_refused: this.guard.refused,
    });
    this.lastDropped = s.droppedTotal;
    // Priority 2: the byte cap never drops a heartbeat.
    this.append({ level: 'info', line: JSON.stringify(body), priority: 2 });
  }

  private armHeartbeat(): void {
    this.heartbeatTimer = this.clock.setTimeout(() => {
      this.heartbeat();
      this.armHeartbeat();
    }, this.options.heartbeatIntervalMs);
    this.heartbeatTimer.unref?.();
  }

  private oldestAgeSeconds(): number {
    const ts = this.spool.oldestTs();
    if (ts === null) return 0;
    return Math.max(0, Math.round((this.clock.now() - Number(BigInt(ts) / 1_000_000n)) / 1000));
  }

  private reloadBundle(): void {
    if (!this.options.bundlePath || this.options.bundle) return;
    const next = loadBundle(this.options.bundlePath);
    if (next.storeId !== this.bundleValue.storeId) {
      throw new Error(`the bundle now names store ${next.storeId}, not ${this.bundleValue.storeId}; restart to switch stores`);
    }
    this.bundleValue = next;
  }

  /** Reports a problem on the onError hook and, when `spool`, as a line of its own in the spool. */
  private report(level: 'error' | 'warn', message: string, spool: boolean): void {
    this.onError(level, message);
    this.emit('warn', new Error(message));
    if (!spool || this.reporting) return;
    this.reporting = true;
    try {
      this.append({ level, line: JSON.stringify({ type: 'transport_event', level, message }), priority: 2 });
    } finally {
      this.reporting = false;
    }
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function stripColors(level: string): string {
  // eslint-disable-next-line no-control-regex
  return level.replace(/\u001b\[[0-9;]*m/g, '');
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v instanceof Error ? { name: v.name, message: v.message, stack: v.stack } : v));
  } catch {
    return String(value);
  }
}
