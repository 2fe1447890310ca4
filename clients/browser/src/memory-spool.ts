import type { LogEntry } from './entry.js';
import type { Level } from './levels.js';
import { type BatchLimits, takeHead } from './batcher.js';
import { type AppendResult, type DropReason, type PendingBatch, type Spool, type SpoolState, addDrop, emptyState, refuseFresh } from './spool-types.js';

/**
 * The spool in memory: the fallback when IndexedDB cannot be opened (lines are
 * then lost with the page), and the reference the IndexedDB spool's rules are
 * unit-tested against. Same byte cap rules.
 */
export class MemorySpool implements Spool {
  readonly kind = 'memory' as const;
  private readonly entries = new Map<string, LogEntry>();
  private readonly pending = new Map<string, PendingBatch>();
  private readonly st = emptyState();

  constructor(private readonly maxBytes: number) {}

  private sorted(): LogEntry[] {
    return [...this.entries.values()].sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0));
  }

  private protectedKeys(): Set<string> {
    const s = new Set<string>();
    for (const p of this.pending.values()) for (const k of p.keys) s.add(k);
    return s;
  }

  async append(fresh: readonly LogEntry[], pendings: readonly PendingBatch[] = []): Promise<AppendResult> {
    for (const p of pendings) this.pending.set(p.key, p);
    let excess = this.st.bytes + fresh.reduce((n, e) => n + e.b, 0) - this.maxBytes;
    const refused = new Set<string>();
    let evicted = 0;
    if (excess > 0) {
      const keep = this.protectedKeys();
      const old = this.sorted();
      for (const cls of [0, 1] as const) {
        for (const e of old) {
          if (excess <= 0) break;
          if (e.p !== cls || keep.has(e.k)) continue;
          this.remove(e);
          addDrop(this.st.dropped, 'spool_full', e.level);
          evicted += 1;
          excess -= e.b;
        }
        excess = refuseFresh(fresh, cls, excess, refused);
      }
    }
    const stored: string[] = [];
    for (const e of fresh) {
      if (refused.has(e.k)) {
        addDrop(this.st.dropped, 'spool_full', e.level);
        continue;
      }
      const had = this.entries.get(e.k);
      if (had) this.remove(had);
      this.entries.set(e.k, e);
      this.st.bytes += e.b;
      this.st.entries += 1;
      stored.push(e.k);
    }
    return { stored, refused: [...refused], evicted };
  }

  private remove(e: LogEntry): void {
    this.entries.delete(e.k);
    this.st.bytes -= e.b;
    this.st.entries -= 1;
  }

  async head(limits: BatchLimits, skip: ReadonlySet<string>): Promise<{ entries: LogEntry[]; full: boolean }> {
    const keep = this.protectedKeys();
    const { taken, full } = takeHead(this.sorted().filter((e) => !skip.has(e.k) && !keep.has(e.k)), limits);
    return { entries: taken, full };
  }

  async pendings(): Promise<PendingBatch[]> {
    return [...this.pending.values()].sort((a, b) => ((a.keys[0] ?? '') < (b.keys[0] ?? '') ? -1 : 1));
  }

  async savePending(p: PendingBatch): Promise<LogEntry[]> {
    const found = this.pick(p.keys);
    if (found.length > 0) this.pending.set(p.key, { ...p, keys: found.map((e) => e.k) });
    return found;
  }

  async loadPending(p: PendingBatch): Promise<LogEntry[]> {
    return this.pick(p.keys);
  }

  private pick(keys: readonly string[]): LogEntry[] {
    const out: LogEntry[] = [];
    for (const k of keys) {
      const e = this.entries.get(k);
      if (e) out.push(e);
    }
    return out;
  }

  async complete(p: PendingBatch, reason?: DropReason): Promise<void> {
    for (const e of this.pick(p.keys)) {
      this.remove(e);
      if (reason) addDrop(this.st.dropped, reason, e.level);
      else this.st.delivered += 1;
    }
    this.pending.delete(p.key);
  }

  async restore(entries: readonly LogEntry[], pendings: readonly PendingBatch[]): Promise<number> {
    let n = 0;
    for (const e of entries) {
      if (this.entries.has(e.k)) continue;
      this.entries.set(e.k, e);
      this.st.bytes += e.b;
      this.st.entries += 1;
      n += 1;
    }
    for (const p of pendings) if (!this.pending.has(p.key)) this.pending.set(p.key, p);
    return n;
  }

  async forget(key: string): Promise<void> {
    this.pending.delete(key);
  }

  async count(reason: DropReason, level: Level, n: number): Promise<void> {
    addDrop(this.st.dropped, reason, level, n);
  }

  async state(): Promise<SpoolState> {
    return {
      entries: this.st.entries,
      bytes: this.st.bytes,
      pending: this.pending.size,
      delivered: this.st.delivered,
      dropped: structuredClone(this.st.dropped),
    };
  }

  close(): void {
    /* nothing to release */
  }
}
