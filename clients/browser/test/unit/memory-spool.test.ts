import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type LogEntry, buildEntry } from '../../src/entry.js';
import type { Level } from '../../src/levels.js';
import { MemorySpool } from '../../src/memory-spool.js';
import { NanoClock, entryKey } from '../../src/timestamp.js';

let now = 1_767_430_800_000;
const clock = new NanoClock(() => now);
function mk(level: Level, i: number): LogEntry {
  now += 1;
  const ts = clock.next();
  // Same size whatever the level (its name appears three times in an entry).
  return buildEntry(level, `${level} ${String(i).padStart(3, '0')} ${'x'.repeat(150 + 3 * (5 - level.length))}`, undefined, false, undefined, ts, entryKey(ts, 'sessionAAAAAAAAA'), {
    session: 'sessionAAAAAAAAA', meta: {}, metadataKeys: new Set(), maxLineBytes: 16384,
  });
}

/**
 * The byte cap's rules on the memory spool (the IndexedDB spool runs the same
 * scenario in Chromium: test/browser/spool.test.ts).
 */
describe('memory spool: byte cap, pending batches, restore', () => {
  it('over the cap the oldest debug go first, then the oldest info; warn and error never; counted by level', async () => {
    const one = mk('info', 0).b;
    const s = new MemorySpool(one * 30);
    const debug = Array.from({ length: 10 }, (_, i) => mk('debug', i));
    const info = Array.from({ length: 10 }, (_, i) => mk('info', i));
    const warn = Array.from({ length: 10 }, (_, i) => mk('warn', i));
    await s.append([...debug, ...info, ...warn]);
    assert.equal((await s.state()).entries, 30);
    const more = Array.from({ length: 15 }, (_, i) => mk('error', i));
    const r = await s.append(more);
    assert.equal(r.evicted, 15);
    const st = await s.state();
    assert.equal(st.dropped.byLevel.debug, 10, 'all debug first');
    assert.equal(st.dropped.byLevel.info, 5, 'then the oldest info');
    assert.equal(st.dropped.byReason.spool_full, 15);
    const left = (await s.head({ maxEntries: 1000, maxBytes: 1e9 }, new Set())).entries.map((e) => e.line);
    assert.ok(left[0]?.includes('info 005'), 'the five oldest info lines are gone');
    assert.equal(left.filter((l) => l.includes('"warn')).length, 10);
    const errors = Array.from({ length: 40 }, (_, i) => mk('error', 100 + i));
    await s.append(errors);
    const after = await s.state();
    assert.equal(after.dropped.byLevel.warn + after.dropped.byLevel.error, 0, 'warn and error are never dropped by the cap');
    assert.ok(after.bytes > one * 30, 'they go in over the cap');
  });

  it('a new debug line never pushes out older info; it is refused, counted', async () => {
    const one = mk('info', 0).b;
    const s = new MemorySpool(one * 3);
    await s.append([mk('info', 1), mk('info', 2), mk('info', 3)]);
    const r = await s.append([mk('debug', 4)]);
    assert.equal(r.refused.length, 1);
    assert.equal((await s.state()).dropped.byLevel.debug, 1);
    assert.equal((await s.state()).entries, 3);
  });

  it('entries of a pending batch are never evicted; complete, forget and restore', async () => {
    const one = mk('info', 0).b;
    const s = new MemorySpool(one * 4);
    const batch = [mk('debug', 1), mk('debug', 2)];
    await s.append([...batch, mk('debug', 3)]);
    const p = { key: 'sessionAAAAAAAAA:0', session: 'sessionAAAAAAAAA', batch: 0, keys: batch.map((e) => e.k), at: now };
    assert.equal((await s.savePending(p)).length, 2);
    await s.append([mk('info', 4), mk('info', 5), mk('info', 6)]);
    assert.deepEqual((await s.loadPending(p)).map((e) => e.k), p.keys, 'in flight: kept');
    assert.equal((await s.head({ maxEntries: 10, maxBytes: 1e9 }, new Set())).entries.some((e) => p.keys.includes(e.k)), false, 'not offered again');
    await s.complete(p);
    const st = await s.state();
    assert.equal(st.delivered, 2);
    assert.equal(st.pending, 0);
    const again = [mk('warn', 7)];
    assert.equal(await s.restore(again, []), 1);
    assert.equal(await s.restore(again, []), 0, 'restoring twice adds nothing');
  });
});
