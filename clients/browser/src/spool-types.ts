import type { LogEntry } from './entry.js';
import type { Level } from './levels.js';
import type { BatchLimits } from './batcher.js';

/** A batch handed to a request: kept until answered, resent with the same identity. */
export interface PendingBatch {
  /** `${session}:${batch}`. */
  key: string;
  session: string;
  batch: number;
  /** Spool keys of its entries, oldest first. */
  keys: string[];
  /** Date.now() when it was made. */
  at: number;
}

export type DropReason = 'spool_full' | 'rejected' | 'too_large' | 'quota' | 'capture_rate';

export const DROP_REASONS: readonly DropReason[] = ['spool_full', 'rejected', 'too_large', 'quota', 'capture_rate'];

export interface DropCounts {
  byReason: Record<DropReason, number>;
  byLevel: Record<Level, number>;
}

/** What the spool holds and has counted, for every tab of the origin. */
export interface SpoolState {
  entries: number;
  bytes: number;
  pending: number;
  /** Entries whose request was answered 2xx (any tab, since the spool was made). */
  delivered: number;
  dropped: DropCounts;
}

export interface AppendResult {
  /** Keys stored. */
  stored: string[];
  /** New entries refused by the byte cap (counted spool_full). */
  refused: string[];
  /** Older entries removed for room (counted spool_full). */
  evicted: number;
}

export interface Spool {
  readonly kind: 'indexeddb' | 'memory';
  /**
   * Stores entries (and, in the same transaction, pending batches: the page
   * being hidden); over the byte cap removes the oldest debug, then the oldest
   * info entries (never warn/error, never a pending batch's).
   */
  append(entries: readonly LogEntry[], pendings?: readonly PendingBatch[]): Promise<AppendResult>;
  /** The oldest entries within the limits, skipping `skip` and every stored pending batch's entries. */
  head(limits: BatchLimits, skip: ReadonlySet<string>): Promise<{ entries: LogEntry[]; full: boolean }>;
  /** Stored pending batches, oldest first. */
  pendings(): Promise<PendingBatch[]>;
  /** Stores a pending batch (only its keys still in the spool) and returns its entries. */
  savePending(p: PendingBatch): Promise<LogEntry[]>;
  /** A pending batch's entries still in the spool. */
  loadPending(p: PendingBatch): Promise<LogEntry[]>;
  /** Removes a pending batch and its entries: delivered, or dropped for `reason`. */
  complete(p: PendingBatch, reason?: DropReason): Promise<void>;
  /** Puts back entries and pending batches (the unload rescue) that are not in the spool yet; returns the entries added. */
  restore(entries: readonly LogEntry[], pendings: readonly PendingBatch[]): Promise<number>;
  /** Removes a pending batch record, keeping its entries (the batch is split). */
  forget(key: string): Promise<void>;
  /** Counts drops that never reached the spool (capture rate limit). */
  count(reason: DropReason, level: Level, n: number): Promise<void>;
  state(): Promise<SpoolState>;
  close(): void;
}

export function emptyDrops(): DropCounts {
  return {
    byReason: { spool_full: 0, rejected: 0, too_large: 0, quota: 0, capture_rate: 0 },
    byLevel: { debug: 0, info: 0, warn: 0, error: 0 },
  };
}

export interface StoredState {
  bytes: number;
  entries: number;
  delivered: number;
  dropped: DropCounts;
}

export function emptyState(): StoredState {
  return { bytes: 0, entries: 0, delivered: 0, dropped: emptyDrops() };
}

export function addDrop(d: DropCounts, reason: DropReason, level: Level, n = 1): void {
  d.byReason[reason] += n;
  d.byLevel[level] += n;
}

/**
 * The byte cap's second step for one class (pure): after the spool's own
 * entries of class `cls` are gone, new entries of that class are refused,
 * oldest first, until the rest fits. Returns the bytes still in excess.
 */
export function refuseFresh(fresh: readonly LogEntry[], cls: 0 | 1, excess: number, refused: Set<string>): number {
  for (const e of fresh) {
    if (excess <= 0) break;
    if (e.p === cls && !refused.has(e.k)) {
      refused.add(e.k);
      excess -= e.b;
    }
  }
  return excess;
}
