import type { Outcome } from './response.js';
import type { SpoolState } from './spool-types.js';

/** One request's answer or failure, as the page's code sees it (`onDelivery`). */
export interface DeliveryEvent {
  /** HTTP status; null when there was no response (network error, a CORS refusal, timeout). */
  status: number | null;
  outcome: Outcome['kind'];
  /** Retry-After as the page can read it: null when absent or not exposed (Access-Control-Expose-Headers). */
  retryAfter: string | null;
  /** Milliseconds until the next attempt (0: at once). */
  waitMs: number;
  entries: number;
  keepalive: boolean;
  /** The fetch rejection, e.g. "TypeError: Failed to fetch". */
  error?: string;
  /** The relay had this batch already. */
  duplicate?: boolean;
  /** The body went gzip'd (Content-Encoding: gzip). */
  gzip: boolean;
}

/** This tab's counters (since the logger was made). */
export interface TabStats {
  /** This tab holds the lock and sends for every tab. */
  leader: boolean;
  /** The Web Locks API was there (false: every tab sends on its own). */
  locked: boolean;
  spoolKind: 'indexeddb' | 'memory' | 'opening';
  /** Log calls at or above `level`. */
  logged: number;
  /** Requests this tab sent (of them with keepalive). */
  requests: number;
  keepaliveRequests: number;
  /** Entries of this tab's 2xx-answered requests (of them by keepalive). */
  sent: number;
  keepaliveSent: number;
  /** Requests by answer: "204", "429", ..., "network", "timeout". */
  statuses: Record<string, number>;
  retries: number;
  rateLimited: number;
  authErrors: number;
  /** Entries the relay refused by its byte cap (its answer's `dropped`). */
  relayDropped: number;
  /** Batches the relay already had. */
  duplicates: number;
  /** Entries lost because IndexedDB refused a write (quota). */
  quotaDropped: number;
  /** Requests sent gzip'd. */
  gzipRequests: number;
  /** The direct target's preflight refused Content-Encoding (a gzip'd push got no response, the same batch uncompressed got one): the page sends uncompressed. */
  gzipRefused: boolean;
  lastStatus: number | null | undefined;
  lastRetryAfter: string | null;
  lastError: string | undefined;
  /** Date.now() before which nothing is sent (backoff, Retry-After, auth pause); 0: none. */
  pausedUntil: number;
  pauseReason: 'none' | 'backoff' | 'rate' | 'auth';
}

/** This tab's counters and the shared spool's state. */
export interface LoggerStats extends TabStats {
  spool: SpoolState;
}

export function newTabStats(): TabStats {
  return {
    leader: false,
    locked: false,
    spoolKind: 'opening',
    logged: 0,
    requests: 0,
    keepaliveRequests: 0,
    sent: 0,
    keepaliveSent: 0,
    statuses: {},
    retries: 0,
    rateLimited: 0,
    authErrors: 0,
    relayDropped: 0,
    duplicates: 0,
    quotaDropped: 0,
    gzipRequests: 0,
    gzipRefused: false,
    lastStatus: undefined,
    lastRetryAfter: null,
    lastError: undefined,
    pausedUntil: 0,
    pauseReason: 'none',
  };
}
