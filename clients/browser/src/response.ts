import { parseRetryAfter } from './backoff.js';

/** What one request came back with; status null: no response (network error, CORS refusal, timeout). */
export interface SendResult {
  status: number | null;
  /** Retry-After as the page can read it (null when absent or not exposed under CORS). */
  retryAfter: string | null;
  body: string;
  /** The fetch rejection, e.g. "TypeError: Failed to fetch" (a CORS refusal looks like this to the page). */
  error?: string;
  timedOut?: boolean;
}

export type Outcome =
  | { kind: 'ok'; relayDropped: number; duplicate: boolean }
  | { kind: 'retry'; reason: 'server' | 'network' | 'timeout' }
  | { kind: 'rate'; retryAfterMs: number | undefined }
  | { kind: 'pause'; status: number }
  | { kind: 'split'; status: number }
  | { kind: 'reject'; status: number };

/**
 * The answer's meaning (same table as the relay route's and the transport's):
 * 2xx done; 429 (and 503 with a readable Retry-After) wait as told; 5xx, 408,
 * network errors and timeouts back off; 400 and 413 split the batch until the
 * refused line stands alone, which is dropped and counted; 401, 403 and other
 * 4xx are configuration, not the lines: slow retry, nothing dropped.
 */
export function classify(r: SendResult, entries: number, nowMs: number): Outcome {
  const s = r.status;
  if (s === null) return { kind: 'retry', reason: r.timedOut ? 'timeout' : 'network' };
  if (s >= 200 && s < 300) {
    let relayDropped = 0;
    let duplicate = false;
    if (r.body.startsWith('{')) {
      try {
        const b = JSON.parse(r.body) as { dropped?: unknown; duplicate?: unknown };
        if (typeof b.dropped === 'number') relayDropped = b.dropped;
        duplicate = b.duplicate === true;
      } catch {
        /* a 2xx is a 2xx */
      }
    }
    return { kind: 'ok', relayDropped, duplicate };
  }
  if (s === 429) return { kind: 'rate', retryAfterMs: parseRetryAfter(r.retryAfter, nowMs) };
  if (s === 503 && r.retryAfter !== null) return { kind: 'rate', retryAfterMs: parseRetryAfter(r.retryAfter, nowMs) };
  if (s >= 500 || s === 408) return { kind: 'retry', reason: 'server' };
  if (s === 400 || s === 413) return entries > 1 ? { kind: 'split', status: s } : { kind: 'reject', status: s };
  return { kind: 'pause', status: s };
}
