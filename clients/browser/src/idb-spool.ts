import type { LogEntry } from './entry.js';
import type { Level } from './levels.js';
import { type BatchLimits, Head } from './batcher.js';
import {
  type AppendResult, type DropReason, type PendingBatch, type Spool, type SpoolState, type StoredState,
  addDrop, emptyState, refuseFresh,
} from './spool-types.js';

const ENTRIES = 'entries';
const PENDING = 'pending';
const META = 'meta';
const STATE = 'state';

/** Asks for the commit now instead of when the event loop next turns: a page that is going away has no next turn. */
function commitNow(t: IDBTransaction): void {
  try {
    (t as IDBTransaction & { commit?: () => void }).commit?.();
  } catch {
    /* already committing */
  }
}

/**
 * The IndexedDB spool, shared by every tab of the origin. Stores: `entries`
 * (key: timestamp + page session, so oldest first; index `p`, the byte-cap
 * class), `pending` (batches handed to a request, resent with the same
 * identity until answered) and `meta` (byte and drop counters). Each call is
 * one transaction, opened synchronously when the database is open (so the
 * writes issued while the page is being hidden are ordered before anything
 * later), and the byte counter changes in the same transaction as the
 * entries.
 */
export class IdbSpool implements Spool {
  readonly kind = 'indexeddb' as const;

  private constructor(private readonly db: IDBDatabase, private readonly maxBytes: number) {
    db.onversionchange = () => db.close();
  }

  static open(name: string, maxBytes: number): Promise<IdbSpool> {
    return new Promise((resolve, reject) => {
      let r: IDBOpenDBRequest;
      try {
        r = indexedDB.open(name, 1);
      } catch (err) {
        reject(err);
        return;
      }
      r.onupgradeneeded = () => {
        const db = r.result;
        const entries = db.createObjectStore(ENTRIES, { keyPath: 'k' });
        entries.createIndex('p', 'p');
        db.createObjectStore(PENDING, { keyPath: 'key' });
        db.createObjectStore(META);
      };
      r.onsuccess = () => resolve(new IdbSpool(r.result, maxBytes));
      r.onerror = () => reject(r.error ?? new Error('IndexedDB open failed'));
      r.onblocked = () => reject(new Error('IndexedDB open blocked'));
    });
  }

  private run<T>(stores: string[], mode: IDBTransactionMode, body: (t: IDBTransaction, set: (v: T) => void) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let result: T | undefined;
      let t: IDBTransaction;
      try {
        t = this.db.transaction(stores, mode);
      } catch (err) {
        reject(err);
        return;
      }
      t.oncomplete = () => resolve(result as T);
      t.onabort = () => reject(t.error ?? new Error('IndexedDB transaction aborted'));
      body(t, (v) => {
        result = v;
      });
    });
  }

  append(fresh: readonly LogEntry[], pendings: readonly PendingBatch[] = []): Promise<AppendResult> {
    return this.run<AppendResult>([ENTRIES, PENDING, META], 'readwrite', (t, set) => {
      const es = t.objectStore(ENTRIES);
      const ps = t.objectStore(PENDING);
      const ms = t.objectStore(META);
      for (const p of pendings) ps.put(p);
      let state: StoredState = emptyState();
      const keep = new Set<string>();
      let loaded = 0;
      const refused = new Set<string>();
      let evicted = 0;
      const loadedOne = (): void => {
        loaded += 1;
        if (loaded < 2) return;
        let excess = state.bytes + fresh.reduce((n, e) => n + e.b, 0) - this.maxBytes;
        const finish = (): void => {
          const stored: string[] = [];
          for (const e of fresh) {
            if (refused.has(e.k)) {
              addDrop(state.dropped, 'spool_full', e.level);
              continue;
            }
            es.put(e);
            state.bytes += e.b;
            state.entries += 1;
            stored.push(e.k);
          }
          ms.put(state, STATE);
          set({ stored, refused: [...refused], evicted });
          commitNow(t);
        };
        // Over the cap: the oldest debug entries go first, then the oldest info ones; warn and error stay.
        const evictClass = (cls: 0 | 1, next: () => void): void => {
          if (excess <= 0) {
            next();
            return;
          }
          const c = es.index('p').openCursor(IDBKeyRange.only(cls));
          c.onsuccess = () => {
            const cur = c.result;
            if (!cur || excess <= 0) {
              excess = refuseFresh(fresh, cls, excess, refused);
              next();
              return;
            }
            const e = cur.value as LogEntry;
            if (!keep.has(e.k)) {
              cur.delete();
              state.bytes -= e.b;
              state.entries -= 1;
              addDrop(state.dropped, 'spool_full', e.level);
              evicted += 1;
              excess -= e.b;
            }
            cur.continue();
          };
        };
        evictClass(0, () => evictClass(1, finish));
      };
      const sr = ms.get(STATE);
      sr.onsuccess = () => {
        if (sr.result) state = sr.result as StoredState;
        loadedOne();
      };
      const pr = ps.getAll();
      pr.onsuccess = () => {
        for (const p of pr.result as PendingBatch[]) for (const k of p.keys) keep.add(k);
        loadedOne();
      };
    });
  }

  head(limits: BatchLimits, skip: ReadonlySet<string>): Promise<{ entries: LogEntry[]; full: boolean }> {
    return this.run([ENTRIES, PENDING], 'readonly', (t, set) => {
      const pr = t.objectStore(PENDING).getAll();
      pr.onsuccess = () => {
        const keep = new Set<string>();
        for (const p of pr.result as PendingBatch[]) for (const k of p.keys) keep.add(k);
        const head = new Head(limits);
        const c = t.objectStore(ENTRIES).openCursor();
        c.onsuccess = () => {
          const cur = c.result;
          if (cur) {
            const e = cur.value as LogEntry;
            if (skip.has(e.k) || keep.has(e.k) || head.add(e)) {
              cur.continue();
              return;
            }
          }
          set({ entries: head.entries, full: head.full });
        };
      };
    });
  }

  pendings(): Promise<PendingBatch[]> {
    return this.run([PENDING], 'readonly', (t, set) => {
      const r = t.objectStore(PENDING).getAll();
      r.onsuccess = () => set((r.result as PendingBatch[]).sort((a, b) => ((a.keys[0] ?? '') < (b.keys[0] ?? '') ? -1 : 1)));
    });
  }

  private getEach(store: IDBObjectStore, keys: readonly string[], done: (found: LogEntry[]) => void): void {
    const found: (LogEntry | undefined)[] = new Array<LogEntry | undefined>(keys.length);
    let left = keys.length;
    if (left === 0) {
      done([]);
      return;
    }
    keys.forEach((k, i) => {
      const r = store.get(k);
      r.onsuccess = () => {
        found[i] = r.result as LogEntry | undefined;
        left -= 1;
        if (left === 0) done(found.filter((e): e is LogEntry => e !== undefined));
      };
    });
  }

  savePending(p: PendingBatch): Promise<LogEntry[]> {
    return this.run([ENTRIES, PENDING], 'readwrite', (t, set) => {
      this.getEach(t.objectStore(ENTRIES), p.keys, (found) => {
        if (found.length > 0) t.objectStore(PENDING).put({ ...p, keys: found.map((e) => e.k) });
        set(found);
      });
    });
  }

  loadPending(p: PendingBatch): Promise<LogEntry[]> {
    return this.run([ENTRIES], 'readonly', (t, set) => this.getEach(t.objectStore(ENTRIES), p.keys, set));
  }

  complete(p: PendingBatch, reason?: DropReason): Promise<void> {
    return this.run([ENTRIES, PENDING, META], 'readwrite', (t) => {
      const es = t.objectStore(ENTRIES);
      const ms = t.objectStore(META);
      t.objectStore(PENDING).delete(p.key);
      const sr = ms.get(STATE);
      sr.onsuccess = () => {
        const state = (sr.result as StoredState | undefined) ?? emptyState();
        this.getEach(es, p.keys, (found) => {
          for (const e of found) {
            es.delete(e.k);
            state.bytes -= e.b;
            state.entries -= 1;
            if (reason) addDrop(state.dropped, reason, e.level);
            else state.delivered += 1;
          }
          ms.put(state, STATE);
        });
      };
    });
  }

  restore(entries: readonly LogEntry[], pendings: readonly PendingBatch[]): Promise<number> {
    return this.run<number>([ENTRIES, PENDING, META], 'readwrite', (t, set) => {
      const es = t.objectStore(ENTRIES);
      const ps = t.objectStore(PENDING);
      const ms = t.objectStore(META);
      for (const p of pendings) {
        const r = ps.getKey(p.key);
        r.onsuccess = () => {
          if (r.result === undefined) ps.put(p);
        };
      }
      const sr = ms.get(STATE);
      sr.onsuccess = () => {
        const state = (sr.result as StoredState | undefined) ?? emptyState();
        let left = entries.length;
        let added = 0;
        const done = (): void => {
          ms.put(state, STATE);
          set(added);
        };
        if (left === 0) done();
        for (const e of entries) {
          const r = es.getKey(e.k);
          r.onsuccess = () => {
            if (r.result === undefined) {
              es.put(e);
              state.bytes += e.b;
              state.entries += 1;
              added += 1;
            }
            left -= 1;
            if (left === 0) done();
          };
        }
      };
    });
  }

  forget(key: string): Promise<void> {
    return this.run([PENDING], 'readwrite', (t) => {
      t.objectStore(PENDING).delete(key);
    });
  }

  count(reason: DropReason, level: Level, n: number): Promise<void> {
    return this.run([META], 'readwrite', (t) => {
      const ms = t.objectStore(META);
      const sr = ms.get(STATE);
      sr.onsuccess = () => {
        const state = (sr.result as StoredState | undefined) ?? emptyState();
        addDrop(state.dropped, reason, level, n);
        ms.put(state, STATE);
      };
    });
  }

  state(): Promise<SpoolState> {
    return this.run([ENTRIES, PENDING, META], 'readonly', (t, set) => {
      const out: SpoolState = { entries: 0, bytes: 0, pending: 0, delivered: 0, dropped: emptyState().dropped };
      const cr = t.objectStore(ENTRIES).count();
      cr.onsuccess = () => {
        out.entries = cr.result;
      };
      const pr = t.objectStore(PENDING).count();
      pr.onsuccess = () => {
        out.pending = pr.result;
      };
      const sr = t.objectStore(META).get(STATE);
      sr.onsuccess = () => {
        const s = sr.result as StoredState | undefined;
        if (s) {
          out.bytes = s.bytes;
          out.delivered = s.delivered;
          out.dropped = s.dropped;
        }
        set(out);
      };
    });
  }

  close(): void {
    this.db.close();
  }
}
