/** Exponential backoff with full jitter: random(0, min(max, base * 2^attempt)). */
export function fullJitter(attempt: number, baseMs: number, maxMs: number, random: () => number): number {
  const cap = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * cap);
}

/**
 * Retry-After: delay-seconds or an HTTP-date, in milliseconds from `nowMs`;
 * undefined when absent or unreadable (a cross-origin response whose edge
 * does not list it in Access-Control-Expose-Headers reads as absent).
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number): number | undefined {
  if (value === null || value === undefined) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  if (v === '') return undefined;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - nowMs);
}

export interface RetryTimings {
  backoffBaseMs: number;
  backoffMaxMs: number;
  retryAfterMaxMs: number;
  rateLimitFallbackMs: number;
}

/**
 * Wait after a 429 (or the relay's 503): the Retry-After (capped) plus up to
 * 10 % (at most 1 s) of jitter; without a readable Retry-After at least
 * `rateLimitFallbackMs`, plus full-jitter backoff of the consecutive refusals,
 * so a hidden header never turns into a tight loop.
 */
export function rateLimitDelay(retryAfterMs: number | undefined, attempt: number, t: RetryTimings, random: () => number): number {
  if (retryAfterMs !== undefined) {
    const base = Math.min(retryAfterMs, t.retryAfterMaxMs);
    return base + Math.floor(random() * Math.min(1000, base * 0.1 + 1));
  }
  return Math.min(t.retryAfterMaxMs, t.rateLimitFallbackMs + fullJitter(attempt, t.backoffBaseMs, t.backoffMaxMs, random));
}
