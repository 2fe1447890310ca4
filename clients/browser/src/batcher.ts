import type { LogEntry } from './entry.js';
import type { BatchId, Encoder } from './encode.js';
import { nsToMs } from './timestamp.js';
import { utf8, utf8Length } from './utf8.js';

export interface BatchLimits {
  /** Most entries per request. */
  maxEntries: number;
  /** Most bytes per request body (uncompressed JSON). */
  maxBytes: number;
}

/** Room a body needs besides its entries (envelope, labels, separators); entries' `b` are measured in relay form. */
const ENVELOPE_BYTES = 256;

/** Collects the oldest entries while they fit the limits by their measured size (a first cut; `encodeFitting` makes it exact). */
export class Head {
  readonly entries: LogEntry[] = [];
  private bytes = ENVELOPE_BYTES;
  private refused = false;

  constructor(private readonly limits: BatchLimits) {}

  /** Adds `e` unless the head is full; false once full. */
  add(e: LogEntry): boolean {
    if (this.entries.length >= this.limits.maxEntries || (this.entries.length > 0 && this.bytes + e.b + 1 > this.limits.maxBytes)) {
      this.refused = true;
      return false;
    }
    this.entries.push(e);
    this.bytes += e.b + 1;
    return true;
  }

  /** A full batch is sent without waiting for `batchWaitMs`. */
  get full(): boolean {
    return this.refused || this.entries.length >= this.limits.maxEntries || this.bytes >= this.limits.maxBytes;
  }
}

export function takeHead(entries: readonly LogEntry[], limits: BatchLimits): { taken: LogEntry[]; full: boolean } {
  const h = new Head(limits);
  for (const e of entries) if (!h.add(e)) break;
  return { taken: h.entries, full: h.full };
}

/**
 * Encodes the longest prefix of `entries` whose body is at most `maxBytes`
 * (at least one entry: one line always fits, the options guarantee it).
 */
export function encodeFitting(entries: readonly LogEntry[], maxBytes: number, encode: Encoder, id: BatchId, sentAt: number): { entries: LogEntry[]; text: string; body: Uint8Array } {
  let n = entries.length;
  for (;;) {
    const part = entries.slice(0, n);
    const text = encode(part, id, sentAt);
    const size = utf8Length(text);
    if (size <= maxBytes || n <= 1) return { entries: part, text, body: utf8(text) };
    n = Math.max(1, Math.min(n - 1, Math.floor((n * maxBytes) / size)));
  }
}

/**
 * When the head of the spool is due: now (0) when forced, full, or its oldest
 * entry is `waitMs` old; else the milliseconds until it is; Infinity when empty.
 */
export function dueIn(head: readonly LogEntry[], full: boolean, now: number, waitMs: number, forced: boolean): number {
  if (head.length === 0) return Infinity;
  if (forced || full) return 0;
  let oldest = Infinity;
  for (const e of head) oldest = Math.min(oldest, nsToMs(e.ts));
  return Math.max(0, oldest + waitMs - now);
}
