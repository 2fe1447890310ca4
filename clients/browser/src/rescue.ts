import type { LogEntry } from './entry.js';
import type { PendingBatch } from './spool-types.js';
import { utf8Length } from './utf8.js';

/**
 * The unload rescue. Chromium aborts an IndexedDB write transaction that is
 * still open when its document goes away (measured: a page that logs and
 * navigates at once lost its last transaction), so when the page is hidden
 * the lines whose write is not yet confirmed, and the identities of the
 * keepalive batches made of them, are also written synchronously to
 * localStorage (bounded: the oldest `maxBytes` of them; the rest depends on
 * its transaction). The next load of the origin puts back
 * into IndexedDB whatever of it is missing there, then removes it; a page
 * that lives on removes its own as soon as the writes are confirmed.
 */
export interface RescueRecord {
  v: 1;
  entries: LogEntry[];
  pendings: PendingBatch[];
}

const PREFIX = ':rescue:';

function storage(): Storage | undefined {
  try {
    return typeof localStorage !== 'undefined' ? localStorage : undefined;
  } catch {
    return undefined; // access denied (storage blocked)
  }
}

export class Rescue {
  constructor(private readonly dbName: string, private readonly maxBytes: number) {}

  private key(session: string): string {
    return `${this.dbName}${PREFIX}${session}`;
  }

  /** Writes this page's record (oldest lines first, within the bound); false when storage refused it. */
  save(session: string, entries: readonly LogEntry[], pendings: readonly PendingBatch[]): boolean {
    const s = storage();
    if (!s) return false;
    const kept: LogEntry[] = [];
    let bytes = 256;
    for (const e of entries) {
      if (bytes + e.b > this.maxBytes) break;
      kept.push(e);
      bytes += e.b;
    }
    const record: RescueRecord = { v: 1, entries: kept, pendings: [...pendings] };
    try {
      const text = JSON.stringify(record);
      if (utf8Length(text) > this.maxBytes * 2) return false;
      s.setItem(this.key(session), text);
      return true;
    } catch {
      return false; // quota
    }
  }

  clear(session: string): void {
    try {
      storage()?.removeItem(this.key(session));
    } catch {
      /* nothing to clear */
    }
  }

  /** Every page's record of this database, with its storage key (remove them with `drop` once restored). */
  all(): { key: string; record: RescueRecord }[] {
    const s = storage();
    if (!s) return [];
    const out: { key: string; record: RescueRecord }[] = [];
    try {
      const keys: string[] = [];
      for (let i = 0; i < s.length; i += 1) {
        const k = s.key(i);
        if (k !== null && k.startsWith(`${this.dbName}${PREFIX}`)) keys.push(k);
      }
      for (const key of keys) {
        const text = s.getItem(key);
        if (text === null) continue;
        try {
          const record = JSON.parse(text) as RescueRecord;
          if (record.v === 1 && Array.isArray(record.entries) && Array.isArray(record.pendings)) out.push({ key, record });
          else s.removeItem(key);
        } catch {
          s.removeItem(key); // a torn record
        }
      }
    } catch {
      /* storage went away */
    }
    return out;
  }

  drop(keys: readonly string[]): void {
    for (const k of keys) {
      try {
        storage()?.removeItem(k);
      } catch {
        /* gone already */
      }
    }
  }
}
