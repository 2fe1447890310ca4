import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { systemClock } from '../src/clock';
import { Spool, SpoolLockedError, spoolFiles, type SpoolEntry, type SpoolOptions } from '../src/spool';
import { tempDir } from './helpers/setup';

const labels = Object.freeze({ store: 'S001', service: 'pos-backend', environment: 'test', instance: 'sp-1', level: 'info' });

function entry(i: number, line = `line ${i}`): SpoolEntry {
  return { ts: String(1_700_000_000_000_000_000n + BigInt(i)), labels, line };
}

function open(dir: string, over: Partial<SpoolOptions> = {}): { spool: Spool; drops: Record<string, number>; errors: string[] } {
  const drops: Record<string, number> = {};
  const errors: string[] = [];
  const spool = new Spool({
    dir, maxBytes: 1024 * 1024, segmentBytes: 64 * 1024, fsyncIntervalMs: 20, dropDebugAt: 0.7, dropInfoAt: 0.9, diskRetryMs: 1000,
    clock: systemClock,
    onDrop: (reason, level, count) => {
      drops[`${reason}/${level}`] = (drops[`${reason}/${level}`] ?? 0) + count;
    },
    onError: (e) => errors.push(e.message),
    ...over,
  });
  spool.open();
  return { spool, drops, errors };
}

function drain(spool: Spool): SpoolEntry[] {
  const out: SpoolEntry[] = [];
  for (;;) {
    const b = spool.peek(1000, 1024 * 1024);
    if (b.entries.length === 0) return out;
    out.push(...b.entries);
    spool.ack(b.end);
  }
}

describe('disk spool', () => {
  it('appends, rotates segments, replays oldest first and deletes delivered segments', () => {
    const { dir, cleanup } = tempDir();
    const { spool } = open(dir);
    for (let i = 0; i < 3000; i += 1) assert.equal(spool.append(entry(i), 1, 'info'), 'ok');
    spool.flush();
    assert.ok(spoolFiles(dir).length > 2, 'several segments');
    const first = spool.peek(10, 1e9);
    assert.deepEqual(first.entries.map((e) => e.line), Array.from({ length: 10 }, (_, i) => `line ${i}`));
    assert.deepEqual(spool.peek(10, 1e9).entries, first.entries, 'peek does not consume');
    const all = drain(spool);
    assert.equal(all.length, 3000);
    assert.deepEqual(all.map((e) => e.line), Array.from({ length: 3000 }, (_, i) => `line ${i}`));
    assert.equal(spool.bytes, 0);
    assert.equal(spoolFiles(dir).length, 1, 'only the active segment is left');
    assert.equal(spool.oldestTs(), null);
    spool.close();
    cleanup();
  });

  it('a restart resumes from the cursor: nothing delivered is replayed, nothing undelivered is lost', () => {
    const { dir, cleanup } = tempDir();
    const a = open(dir).spool;
    for (let i = 0; i < 100; i += 1) a.append(entry(i), 1, 'info');
    const b1 = a.peek(40, 1e9);
    a.ack(b1.end);
    a.close();
    const b = open(dir).spool;
    assert.equal(b.oldestTs(), entry(40).ts);
    const rest = drain(b);
    assert.deepEqual(rest.map((e) => e.line), Array.from({ length: 60 }, (_, i) => `line ${i + 40}`));
    b.close();
    cleanup();
  });

  it('a torn tail (kill -9 or a power cut mid-write) is cut at the last whole record', () => {
    const { dir, cleanup } = tempDir();
    const a = open(dir).spool;
    for (let i = 0; i < 10; i += 1) a.append(entry(i), 1, 'info');
    a.flush();
    const seg = join(dir, (spoolFiles(dir)[0] as { name: string }).name);
    const size = statSync(seg).size;
    // Simulate a crash: the process is gone (no close), a half-written record is left.
    appendFileSync(seg, Buffer.from([0x4c, 0x53, 0xff, 0x00, 0x00, 0x00, 0x01, 0x02]));
    writeFileSync(join(dir, 'lock'), '999999\n');
    const b = open(dir).spool;
    assert.equal(statSync(seg).size, size);
    b.append(entry(10), 1, 'info');
    assert.deepEqual(drain(b).map((e) => e.line), Array.from({ length: 11 }, (_, i) => `line ${i}`));
    b.close();
    cleanup();
  });

  it('a corrupt record in the middle is skipped, counted, and the records after it are kept', () => {
    const { dir, cleanup } = tempDir();
    const a = open(dir, { segmentBytes: 1e9 }).spool;
    for (let i = 0; i < 10; i += 1) a.append(entry(i, `payload-${i}-${'p'.repeat(20)}`), 1, 'info');
    a.append(entry(99, 'tail'), 1, 'info');
    a.close();
    const seg = join(dir, (spoolFiles(dir)[0] as { name: string }).name);
    const buf = readFileSync(seg);
    const at = buf.indexOf('payload-4-');
    buf[at + 3] ^= 0xff; // flip bits inside record 4's payload: its CRC no longer matches
    writeFileSync(seg, buf);
    const b = open(dir, { segmentBytes: 1e9 });
    const lines = drain(b.spool).map((e) => e.line.split('-').slice(0, 2).join('-'));
    assert.deepEqual(lines, ['payload-0', 'payload-1', 'payload-2', 'payload-3', 'payload-5', 'payload-6', 'payload-7', 'payload-8', 'payload-9', 'tail']);
    assert.equal(b.drops['corrupt/unknown'], 1);
    assert.ok(b.errors.some((e) => e.includes('corrupt record')));
    b.spool.close();
    cleanup();
  });

  it('byte cap: drops debug first, then info, never warn or error, and counts what it dropped', () => {
    const { dir, cleanup } = tempDir();
    const { spool, drops } = open(dir, { maxBytes: 200_000 });
    const line = 'x'.repeat(90);
    let n = 0;
    const fill = (level: string, prio: 0 | 1 | 2, count: number): number => {
      let ok = 0;
      for (let i = 0; i < count; i += 1) if (spool.append(entry(n++, `${level} ${line}`), prio, level) === 'ok') ok += 1;
      return ok;
    };
    while (spool.bytes < 120_000) assert.equal(fill('info', 1, 1), 1); // 60 % of the cap
    assert.ok(fill('debug', 0, 1000) < 1000, 'debug refused above 70 %');
    assert.ok(spool.bytes <= 140_000);
    assert.ok(fill('info', 1, 1000) < 1000, 'info refused above 90 %');
    assert.ok(spool.bytes <= 180_000 && spool.bytes > 170_000);
    assert.equal(fill('warn', 2, 300), 300, 'warn always admitted');
    assert.equal(fill('error', 2, 300), 300, 'error always admitted');
    assert.ok((drops['spool_full/debug'] ?? 0) > 0);
    assert.ok((drops['spool_full/info'] ?? 0) > 0);
    assert.equal(drops['spool_full/warn'], undefined);
    assert.equal(drops['spool_full/error'], undefined);
    spool.close();
    cleanup();
  });

  it('one writer per spool: a second live process is refused, a stale lock is taken over', () => {
    const { dir, cleanup } = tempDir();
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'lock'), `${process.ppid}\n`); // a live process that is not us
    assert.throws(() => open(dir), SpoolLockedError);
    writeFileSync(join(dir, 'lock'), '999999\n'); // dead pid
    const { spool } = open(dir);
    assert.equal(readFileSync(join(dir, 'lock'), 'utf8').trim(), String(process.pid));
    spool.close();
    assert.equal(spool.append(entry(1), 1, 'info'), 'ok', 'appends after close are still written');
    spool.release();
    assert.equal(spool.append(entry(2), 1, 'info'), 'closed');
    assert.equal(existsSync(join(dir, 'lock')), false);
    cleanup();
  });

  it('a broken cursor replays from the oldest segment (Loki collapses what it has)', () => {
    const { dir, cleanup } = tempDir();
    const a = open(dir).spool;
    for (let i = 0; i < 5; i += 1) a.append(entry(i), 1, 'info');
    a.ack(a.peek(2, 1e9).end);
    a.close();
    writeFileSync(join(dir, 'cursor.json'), '{"seg":');
    const b = open(dir).spool;
    assert.equal(drain(b).length, 5);
    b.close();
    writeFileSync(join(dir, 'cursor.json'), '{"seg":999,"off":0}');
    const c = open(dir).spool;
    assert.equal(drain(c).length, 0, 'a cursor past the newest segment means all delivered');
    c.close();
    cleanup();
  });

  it('a full disk (1 MiB tmpfs) fails closed: the write error is counted, the segment stays whole, delivery frees space and writing resumes', (t) => {
    const { dir, cleanup } = tempDir();
    const mnt = join(dir, 'tiny');
    mkdirSync(mnt);
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt], { stdio: 'pipe' });
    } catch (err) {
      console.log(`SKIP: cannot mount a 1 MiB tmpfs (needs root): ${(err as Error).message.split('\n')[0]}`);
      t.skip('no tmpfs');
      cleanup();
      return;
    }
    try {
      const now = { t: Date.now() };
      const clock = { ...systemClock, now: () => now.t };
      const { spool, drops, errors } = open(join(mnt, 'spool'), { maxBytes: 64 * 1024 * 1024, segmentBytes: 256 * 1024, diskRetryMs: 1000, clock });
      const line = 'e'.repeat(500);
      let ok = 0;
      let diskFull = 0;
      for (let i = 0; i < 5000; i += 1) {
        const r = spool.append(entry(i, `${i} ${line}`), 2, 'error');
        if (r === 'ok') ok += 1;
        if (r === 'disk_full') diskFull += 1;
        if (i % 50 === 0) spool.flush();
      }
      spool.flush();
      assert.ok((drops['disk_full/error'] ?? 0) > 0, 'the full disk is counted');
      assert.ok(errors.some((e) => e.includes('failing closed')));
      assert.equal(spool.failingClosed, true);
      assert.ok(diskFull > 0, 'appends refused at once while failing closed');
      // Everything that was accepted and not dropped by the write error reads back whole.
      const all = drain(spool);
      // disk_full counts both: appends refused while failing closed, and records the failed write dropped.
      const writeFailures = (drops['disk_full/error'] ?? 0) - diskFull;
      assert.ok(writeFailures > 0);
      assert.equal(all.length, ok - writeFailures);
      assert.ok(all.length > 1000, `${all.length} records kept on a 1 MiB disk`);
      for (const e of all) assert.ok(e.line.endsWith(line));
      // Delivery freed the space: after diskRetryMs, appends work again.
      now.t += 1500;
      assert.equal(spool.append(entry(9999, 'after'), 2, 'error'), 'ok');
      spool.flush();
      assert.deepEqual(drain(spool).map((e) => e.line), ['after']);
      spool.close();
    } finally {
      execFileSync('umount', ['-l', mnt]);
      try {
        rmdirSync(mnt);
      } catch {
        /* cleanup below */
      }
      cleanup();
    }
  });

  it('a truncated sealed segment is read up to its last whole record', () => {
    const { dir, cleanup } = tempDir();
    const a = open(dir, { segmentBytes: 2048 }).spool;
    for (let i = 0; i < 100; i += 1) {
      a.append(entry(i), 1, 'info');
      a.flush();
    }
    a.close();
    const files = spoolFiles(dir);
    assert.ok(files.length > 2);
    const first = join(dir, (files[0] as { name: string }).name);
    truncateSync(first, statSync(first).size - 5);
    const b = open(dir, { segmentBytes: 2048 });
    const got = drain(b.spool);
    assert.equal(got.length, 99);
    assert.equal(b.drops['corrupt/unknown'], 1);
    b.spool.close();
    assert.ok(readdirSync(dir).includes('cursor.json'));
    cleanup();
  });
});
