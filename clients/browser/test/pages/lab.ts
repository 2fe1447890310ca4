/** The spool lab (runs in Chromium): the spool modules as compiled, for the IndexedDB spool tests. */
import { buildEntry } from '../../src/entry.js';
import { IdbSpool } from '../../src/idb-spool.js';
import type { Level } from '../../src/levels.js';
import { MemorySpool } from '../../src/memory-spool.js';
import { NanoClock, entryKey } from '../../src/timestamp.js';
import type { LabWindow } from './types.js';

const clock = new NanoClock();
const w = window as unknown as LabWindow;
w.lab = {
  IdbSpool,
  MemorySpool,
  mk: (level: Level, i: number, session = 'labsessionAAAAAA') => {
    const ts = clock.next();
    // Same size whatever the level (its name appears three times in an entry).
    return buildEntry(level, `${level} ${String(i).padStart(3, '0')} ${'x'.repeat(150 + 3 * (5 - level.length))}`, undefined, false, undefined, ts, entryKey(ts, session), {
      session, meta: {}, metadataKeys: new Set(), maxLineBytes: 16384,
    });
  },
};
w.ready = true;
