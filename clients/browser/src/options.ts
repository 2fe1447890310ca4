import { type Level, isLevel } from './levels.js';
import type { DeliveryEvent } from './stats.js';

export type Target = 'relay' | 'direct';

/** Options of `createLogger`; every one has a default except the direct target's credential. */
export interface PosLoggerOptions {
  /** `relay` (default): the store backend's relay route, same origin, no credential. `direct`: the central edge's push route with the store's push credential (CORS). */
  target?: Target;
  /** Relay route URL (relay target). Default `/logs/relay`. */
  relayUrl?: string;
  /** The edge's push URL, `LOKI_PUSH_URL` of the store bundle (direct target, required). */
  pushUrl?: string;
  /** Push credential user, `LOKI_USERNAME` (direct target, required; must equal `store`). */
  username?: string;
  /** Push credential token, `LOKI_PASSWORD` (direct target, required). */
  password?: string;
  /** `store` label, `STORE_ID` (direct target, required; the edge refuses a stream of another store with 400). Relay: the backend sets it. */
  store?: string;
  /** `environment` label (direct target). Default `production`. Relay: the backend's. */
  environment?: string;
  /** `service` label. Default `pos-frontend`. */
  service?: string;
  /** Structured metadata `terminal_id` of every line. */
  terminal?: string;
  /** Structured metadata `user_id` of every line (change it with `setUser`). */
  user?: string;
  /** Structured metadata `page` (location.pathname, no query) of every line. Default true. */
  page?: boolean;
  /** Lowest level sent. Default `info`. */
  level?: Level;
  /** Also print to the console: false, true (every level) or the lowest level printed. Default true. */
  console?: boolean | Level;
  /** Log uncaught errors and unhandled rejections. Default true. */
  captureErrors?: boolean;
  /** Most captured errors logged per minute (the rest counted `capture_rate`). Default 60. */
  captureMaxPerMinute?: number;
  /** Context keys sent as structured metadata (snake_case; camelCase accepted). Default `terminal_id, user_id, order_id, trace_id, span_id, request_id`. */
  metadataKeys?: string[];
  /** Longest line, bytes: longer ones are cut (still JSON), metadata `truncated=1`. Default 16384. */
  maxLineBytes?: number;
  /** Most entries per request. Default 500 (the relay's limit). */
  batchMaxEntries?: number;
  /** Most bytes per request body (uncompressed). Default 60000 (under the relay's and keepalive's 64 KiB). */
  batchMaxBytes?: number;
  /** A batch that is not full waits this long after its oldest line. Default 2000. */
  batchWaitMs?: number;
  /** Byte cap of the IndexedDB spool (all tabs of the origin). Default 10485760 (10 MiB). */
  spoolMaxBytes?: number;
  /** IndexedDB database name (and lock and channel name). Default `obs-pos-logger`. */
  dbName?: string;
  /** Bytes of keepalive requests in flight at once (the browser allows 64 KiB per page). Default 60000. */
  keepaliveMaxBytes?: number;
  /**
   * gzip bodies of 1 KiB and more with CompressionStream (when the browser has it). Default true, for both targets:
   * the edge's preflight allows Content-Encoding. Direct: should a preflight refuse it (an older edge), the batch is
   * resent uncompressed and gzip stays off for the page load (`stats().gzipRefused`).
   */
  gzip?: boolean;
  /** A request without an answer by then is aborted and retried. Default 15000. */
  requestTimeoutMs?: number;
  /** Backoff after network errors, 5xx, 408 and timeouts: random(0, min(max, base * 2^n)). Defaults 1000 / 60000. */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** Longest Retry-After honoured. Default 300000. */
  retryAfterMaxMs?: number;
  /** After a 429 whose Retry-After cannot be read: at least this long (plus backoff). Default 5000. */
  rateLimitFallbackMs?: number;
  /** After a 401, 403 or another configuration 4xx: one retry this often, nothing dropped. Default 300000. */
  authRetryMs?: number;
  /** Every answer and failure of a request: status (null: no response), Retry-After as readable, the wait before the next attempt. */
  onDelivery?: (event: DeliveryEvent) => void;
}

export interface ResolvedOptions {
  target: Target;
  url: string;
  headers: Record<string, string>;
  credentials: RequestCredentials;
  labels: Record<string, string>;
  service: string;
  terminal: string | undefined;
  user: string | undefined;
  page: boolean;
  level: Level;
  consoleLevel: Level | undefined;
  captureErrors: boolean;
  captureMaxPerMinute: number;
  metadataKeys: ReadonlySet<string>;
  maxLineBytes: number;
  batchMaxEntries: number;
  batchMaxBytes: number;
  batchWaitMs: number;
  spoolMaxBytes: number;
  dbName: string;
  keepaliveMaxBytes: number;
  gzip: boolean;
  requestTimeoutMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  retryAfterMaxMs: number;
  rateLimitFallbackMs: number;
  authRetryMs: number;
  onDelivery: ((event: DeliveryEvent) => void) | undefined;
}

export const DEFAULT_METADATA_KEYS = ['terminal_id', 'user_id', 'order_id', 'trace_id', 'span_id', 'request_id'];

function num(name: string, v: number | undefined, dflt: number, min: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min) throw new TypeError(`pos-logger: ${name} must be a number >= ${min}`);
  return v;
}

function str(name: string, v: string | undefined): string {
  if (typeof v !== 'string' || v === '') throw new TypeError(`pos-logger: ${name} is required for the direct target`);
  return v;
}

/** Defaults and checks; throws TypeError on a wrong option. */
export function resolveOptions(o: PosLoggerOptions, canGzip: boolean, base64: (s: string) => string): ResolvedOptions {
  const target = o.target ?? 'relay';
  if (target !== 'relay' && target !== 'direct') throw new TypeError('pos-logger: target must be "relay" or "direct"');
  const service = o.service ?? 'pos-frontend';
  const environment = o.environment ?? 'production';
  let url: string;
  let headers: Record<string, string> = {};
  let credentials: RequestCredentials = 'same-origin';
  let labels: Record<string, string> = {};
  if (target === 'direct') {
    url = str('pushUrl', o.pushUrl);
    const store = str('store', o.store);
    const username = str('username', o.username);
    const password = str('password', o.password);
    if (username !== store) throw new TypeError(`pos-logger: username (${username}) must equal store (${store}): the edge takes a store's lines only with its own credential`);
    headers = { Authorization: `Basic ${base64(`${username}:${password}`)}` };
    credentials = 'omit';
    labels = { service, store, environment };
  } else {
    url = o.relayUrl ?? '/logs/relay';
  }
  const level = o.level ?? 'info';
  if (!isLevel(level)) throw new TypeError('pos-logger: level must be debug, info, warn or error');
  const c = o.console ?? true;
  const consoleLevel: Level | undefined = c === true ? 'debug' : c === false ? undefined : c;
  if (consoleLevel !== undefined && !isLevel(consoleLevel)) throw new TypeError('pos-logger: console must be a boolean or a level');
  const maxLineBytes = num('maxLineBytes', o.maxLineBytes, 16384, 256);
  const batchMaxBytes = num('batchMaxBytes', o.batchMaxBytes, 60000, 1024);
  if (batchMaxBytes < maxLineBytes * 1.5 + 1024) throw new TypeError('pos-logger: batchMaxBytes must leave room for one line of maxLineBytes (1.5 x + 1024)');
  const keepaliveMaxBytes = num('keepaliveMaxBytes', o.keepaliveMaxBytes, 60000, 0);
  if (keepaliveMaxBytes > 65536) throw new TypeError('pos-logger: keepaliveMaxBytes must be at most 65536 (the browser\'s keepalive budget)');
  const gzip = (o.gzip ?? true) && canGzip;
  return {
    target,
    url,
    headers,
    credentials,
    labels,
    service,
    terminal: o.terminal,
    user: o.user,
    page: o.page ?? true,
    level,
    consoleLevel,
    captureErrors: o.captureErrors ?? true,
    captureMaxPerMinute: num('captureMaxPerMinute', o.captureMaxPerMinute, 60, 0),
    metadataKeys: new Set(o.metadataKeys ?? DEFAULT_METADATA_KEYS),
    maxLineBytes,
    batchMaxEntries: Math.floor(num('batchMaxEntries', o.batchMaxEntries, 500, 1)),
    batchMaxBytes,
    batchWaitMs: num('batchWaitMs', o.batchWaitMs, 2000, 0),
    spoolMaxBytes: num('spoolMaxBytes', o.spoolMaxBytes, 10 * 1024 * 1024, 4096),
    dbName: o.dbName ?? 'obs-pos-logger',
    keepaliveMaxBytes,
    gzip,
    requestTimeoutMs: num('requestTimeoutMs', o.requestTimeoutMs, 15000, 0),
    backoffBaseMs: num('backoffBaseMs', o.backoffBaseMs, 1000, 1),
    backoffMaxMs: num('backoffMaxMs', o.backoffMaxMs, 60000, 1),
    retryAfterMaxMs: num('retryAfterMaxMs', o.retryAfterMaxMs, 300000, 0),
    rateLimitFallbackMs: num('rateLimitFallbackMs', o.rateLimitFallbackMs, 5000, 0),
    authRetryMs: num('authRetryMs', o.authRetryMs, 300000, 100),
    onDelivery: o.onDelivery,
  };
}
