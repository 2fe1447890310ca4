import { hostname } from 'node:os';
import { join } from 'node:path';
import type { StoreBundle } from './bundle';
import type { Clock } from './clock';
import type { Priority } from './spool';

/** Every option of the transport; `DEFAULTS` below gives each default. */
export interface LokiTransportOptions {
  /** Path of the store bundle (`<store id>.env`). Default: env LOKI_BUNDLE_FILE; else the bundle is read from process.env. */
  bundlePath?: string;
  /** The bundle itself, already parsed (takes precedence over bundlePath). */
  bundle?: StoreBundle;
  /** `service` label, e.g. "pos-backend". Required. */
  service: string;
  /** `environment` label. Default: NODE_ENV, else "production". */
  environment?: string;
  /** `instance` label, unique per process. Default: `<hostname>-<pid>`. */
  instance?: string;
  /** Spool directory (one per process). Default: `./loki-spool/<service>` under the working directory. */
  spoolDir?: string;
  /** PEM file of a CA to trust instead of Node's bundled roots (the edge's private CA). */
  caFile?: string;
  /** The same as PEM text. */
  ca?: string | Buffer;
  /** Connect to this address ("host" or "host:port") instead of resolving the push URL's host (TLS name stays the URL's). */
  connectTo?: string;
  /** More static labels (keys and values fixed for the process). */
  labels?: Record<string, string>;
  /** Label keys a log call may set through `info.labels` (values capped by maxLabelValues). Default: none. */
  dynamicLabels?: string[];
  /** Distinct values each dynamic label may take before new values go to metadata. */
  maxLabelValues?: number;
  /** Fields of a log call sent as Loki structured metadata (camelCase variants are accepted too). */
  metadataKeys?: string[];
  spoolMaxBytes?: number;
  segmentBytes?: number;
  fsyncIntervalMs?: number;
  dropDebugAt?: number;
  dropInfoAt?: number;
  diskRetryMs?: number;
  batchMaxLines?: number;
  batchMaxBytes?: number;
  batchWaitMs?: number;
  requestTimeoutMs?: number;
  gzipLevel?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  retryAfterMaxMs?: number;
  startupJitterMs?: number;
  breakerFailures?: number;
  breakerOpenMs?: number;
  breakerMaxOpenMs?: number;
  probeLines?: number;
  authRetryMs?: number;
  maxBisectRequests?: number;
  heartbeatIntervalMs?: number;
  shutdownTimeoutMs?: number;
  deadLetterMaxBytes?: number;
  /** Level -> priority for the spool's byte cap: 0 dropped first, 1 next, 2 never. */
  levelPriority?: Record<string, Priority>;
  /** Where the transport reports its own problems. Default: one line on stderr. */
  onError?: (level: 'error' | 'warn', message: string) => void;
  /** Winston's transport level (lines below it are not sent). */
  level?: string;
  /** For tests: the clock and the random source. */
  clock?: Clock;
  random?: () => number;
}

export const DEFAULT_METADATA_KEYS = ['terminal_id', 'user_id', 'order_id', 'trace_id', 'span_id', 'request_id'];

export const DEFAULT_LEVEL_PRIORITY: Record<string, Priority> = {
  emerg: 2, alert: 2, crit: 2, error: 2, warning: 2, warn: 2,
  notice: 1, info: 1, http: 1,
  verbose: 0, debug: 0, silly: 0, trace: 0,
};

export const DEFAULTS = {
  environment: 'production',
  maxLabelValues: 20,
  spoolMaxBytes: 256 * 1024 * 1024,
  segmentBytes: 8 * 1024 * 1024,
  fsyncIntervalMs: 1000,
  dropDebugAt: 0.7,
  dropInfoAt: 0.9,
  diskRetryMs: 5000,
  batchMaxLines: 5000,
  batchMaxBytes: 1024 * 1024,
  batchWaitMs: 1000,
  requestTimeoutMs: 15000,
  gzipLevel: 1,
  backoffBaseMs: 500,
  backoffMaxMs: 60000,
  retryAfterMaxMs: 300000,
  startupJitterMs: 10000,
  breakerFailures: 5,
  breakerOpenMs: 30000,
  breakerMaxOpenMs: 300000,
  probeLines: 10,
  authRetryMs: 300000,
  maxBisectRequests: 64,
  heartbeatIntervalMs: 60000,
  shutdownTimeoutMs: 5000,
  deadLetterMaxBytes: 16 * 1024 * 1024,
} as const;

export type ResolvedOptions = Required<Omit<LokiTransportOptions, 'bundle' | 'bundlePath' | 'caFile' | 'ca' | 'connectTo' | 'level' | 'onError' | 'clock' | 'random'>> &
  Pick<LokiTransportOptions, 'bundle' | 'bundlePath' | 'caFile' | 'ca' | 'connectTo' | 'level'>;

export function resolveOptions(o: LokiTransportOptions): ResolvedOptions {
  if (!o.service || !/^[A-Za-z0-9_.:-]{1,64}$/.test(o.service)) throw new Error('loki transport: option service (e.g. "pos-backend") is required');
  const positive = (name: keyof typeof DEFAULTS, value: number | undefined): number => {
    const v = value ?? (DEFAULTS[name] as number);
    if (!Number.isFinite(v) || v < 0) throw new Error(`loki transport: option ${name} must be a number >= 0, got ${String(value)}`);
    return v;
  };
  const ratio = (name: 'dropDebugAt' | 'dropInfoAt', value: number | undefined): number => {
    const v = value ?? DEFAULTS[name];
    if (!(v > 0 && v <= 1)) throw new Error(`loki transport: option ${name} must be in (0, 1], got ${String(value)}`);
    return v;
  };
  const numbers = {} as Record<keyof typeof DEFAULTS, number>;
  for (const key of Object.keys(DEFAULTS) as (keyof typeof DEFAULTS)[]) {
    if (key === 'environment') continue;
    numbers[key] = positive(key, o[key] as number | undefined);
  }
  if (numbers.batchMaxLines < 1) throw new Error('loki transport: option batchMaxLines must be >= 1');
  return {
    ...numbers,
    bundle: o.bundle,
    bundlePath: o.bundlePath ?? process.env.LOKI_BUNDLE_FILE,
    caFile: o.caFile,
    ca: o.ca,
    connectTo: o.connectTo,
    level: o.level,
    service: o.service,
    environment: o.environment ?? process.env.NODE_ENV ?? DEFAULTS.environment,
    instance: o.instance ?? `${hostname()}-${process.pid}`,
    spoolDir: o.spoolDir ?? join(process.cwd(), 'loki-spool', o.service),
    labels: o.labels ?? {},
    dynamicLabels: o.dynamicLabels ?? [],
    metadataKeys: o.metadataKeys ?? DEFAULT_METADATA_KEYS,
    levelPriority: { ...DEFAULT_LEVEL_PRIORITY, ...o.levelPriority },
    dropDebugAt: ratio('dropDebugAt', o.dropDebugAt),
    dropInfoAt: ratio('dropInfoAt', o.dropInfoAt),
  } as ResolvedOptions;
}
