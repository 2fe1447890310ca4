import {
  closeSync, existsSync, fdatasyncSync, fstatSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync,
  readSync, renameSync, statSync, unlinkSync, writeFileSync, writeSync, fsyncSync,
} from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { Clock, TimerHandle } from './clock';

/**
 * The disk spool: every log line lands here before any network I/O.
 *
 * Layout of the spool directory:
 *   seg-<16 digits>.lsp  append-only segments, oldest first; sealed at `segmentBytes`
 *   cursor.json          {seg, off}: where the next unsent record starts (written atomically)
 *   lock                 the pid of the process that owns the spool (one writer per spool)
 *
 * Record: 'L' 'S' | u32 LE payload length | u32 LE CRC-32 of the payload | payload, UTF-8:
 *   <ts ns> TAB <labels JSON> TAB <line as a JSON string> TAB <metadata JSON or nothing>
 * (JSON text never holds a raw TAB, so the fields split unambiguously).
 *
 * Segments are opened O_APPEND ("a"/"ax"): after a failed write is cut off
 * with ftruncate, the next write lands at the new end, not after a hole.
 *
 * Durability: appends of one event-loop turn are written with one write(2) at
 * the end of the turn (so a line whose log call returned is in the kernel and
 * survives kill -9), and fdatasync(2)'d every `fsyncIntervalMs` (bounds what a
 * power cut can take) and on rotation and close. On start a torn tail (kill -9
 * or power cut in the middle of a write) is cut off at the last valid record;
 * a corrupt record elsewhere is skipped by scanning for the next valid header,
 * and counted.
 */
export type Labels = Readonly<Record<string, string>>;

export interface SpoolEntry {
  /** Nanoseconds since the epoch, decimal. */
  readonly ts: string;
  readonly labels: Labels;
  readonly line: string;
  /** Loki structured metadata. */
  readonly meta?: Record<string, string> | undefined;
}

/**
 * An entry read back from the spool. It keeps the JSON text of its labels,
 * line and metadata as stored, so a push body is built from them without
 * parsing and re-serialising every line; the parsed values are made only
 * when asked for (a 400 to resolve, a dead letter).
 */
export class StoredEntry implements SpoolEntry {
  #labels: Labels | undefined;
  #line: string | undefined;
  #meta: Record<string, string> | undefined | null;

  constructor(readonly ts: string, readonly labelsJson: string, readonly lineJson: string, readonly metaJson: string) {}

  get labels(): Labels {
    this.#labels ??= JSON.parse(this.labelsJson) as Labels;
    return this.#labels;
  }

  get line(): string {
    this.#line ??= JSON.parse(this.lineJson) as string;
    return this.#line;
  }

  get meta(): Record<string, string> | undefined {
    if (this.#meta === undefined) this.#meta = this.metaJson === '' ? null : (JSON.parse(this.metaJson) as Record<string, string>);
    return this.#meta ?? undefined;
  }
}

/** 0: debug class (dropped first), 1: info class, 2: warn/error (never dropped by the byte cap). */
export type Priority = 0 | 1 | 2;

export interface Position {
  seg: number;
  off: number;
}

export interface SpoolBatch {
  entries: StoredEntry[];
  /** Raw bytes of the records (a close estimate of the JSON push size). */
  bytes: number;
  end: Position;
}

export interface SpoolOptions {
  dir: string;
  maxBytes: number;
  segmentBytes: number;
  fsyncIntervalMs: number;
  /** Fraction of maxBytes above which debug-class lines are refused. */
  dropDebugAt: number;
  /** Fraction of maxBytes above which info-class lines are refused. */
  dropInfoAt: number;
  /** After a write error (ENOSPC, EIO, ...), appends are refused for this long before trying again. */
  diskRetryMs: number;
  clock: Clock;
  onDrop: (reason: 'spool_full' | 'disk_full' | 'corrupt', level: string, count: number) => void;
  onError: (err: Error) => void;
}

export type AppendResult = 'ok' | 'spool_full' | 'disk_full' | 'closed';

export class SpoolLockedError extends Error {
  override name = 'SpoolLockedError';
}

const MAGIC0 = 0x4c; // 'L'
const MAGIC1 = 0x53; // 'S'
const HEADER = 10;
const MAX_RECORD = 64 * 1024 * 1024;
const SEGMENT = /^seg-(\d{16})\.lsp$/;
const FLUSH_AT = 256 * 1024;

interface Pending {
  buf: Buffer;
  level: string;
}

export class Spool {
  private readonly sizes = new Map<number, number>();
  private segs: number[] = [];
  private activeSeq = 0;
  private activeFd = -1;
  private activeSize = 0;
  private cursor: Position = { seg: 0, off: 0 };
  private pending: Pending[] = [];
  private pendingBytes = 0;
  private flushScheduled = false;
  private dirty = false;
  private diskFailedUntil = 0;
  private syncTimer: TimerHandle | undefined;
  private closed = true;
  private readFd = -1;
  private readSeq = -1;
  private headTs: string | null | undefined;
  private corruptCountedTo: Position = { seg: 0, off: 0 };
  private readonly labelJson = new WeakMap<object, string>();
  /** Bytes in sealed and active segments from the cursor on, flushed. */
  private stored = 0;

  constructor(private readonly options: SpoolOptions) {}

  open(): void {
    const { dir } = this.options;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.lock();
    this.segs = readdirSync(dir)
      .map((name) => SEGMENT.exec(name))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
    for (const seq of this.segs) this.sizes.set(seq, statSync(this.segPath(seq)).size);
    if (this.segs.length === 0) {
      this.createSegment(1);
    } else {
      this.activeSeq = this.segs[this.segs.length - 1] as number;
      this.recoverTail(this.activeSeq);
      this.activeFd = openSync(this.segPath(this.activeSeq), 'a', 0o600);
    }
    this.cursor = this.readCursor();
    this.deleteBefore(this.cursor.seg);
    this.recount();
    this.closed = false;
    this.armSync();
  }

  /** Appends one entry. Never throws: refusals are counted and returned. */
  append(entry: SpoolEntry, priority: Priority, level: string): AppendResult {
    if (this.closed) return 'closed';
    const buf = this.encode(entry);
    const used = this.stored + this.pendingBytes + buf.length;
    const { maxBytes, dropDebugAt, dropInfoAt } = this.options;
    if ((priority === 0 && used > maxBytes * dropDebugAt) || (priority === 1 && used > maxBytes * dropInfoAt)) {
      this.options.onDrop('spool_full', level, 1);
      return 'spool_full';
    }
    if (this.options.clock.now() < this.diskFailedUntil) {
      this.options.onDrop('disk_full', level, 1);
      return 'disk_full';
    }
    this.pending.push({ buf, level });
    this.pendingBytes += buf.length;
    if (this.stored === 0 && this.headTs === null) this.headTs = undefined;
    if (this.pendingBytes >= FLUSH_AT || this.afterClose) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(() => this.flush());
    }
    return 'ok';
  }

  /** True while appends are refused after a write error. */
  get failingClosed(): boolean {
    return this.options.clock.now() < this.diskFailedUntil;
  }

  /** Writes what is pending to the active segment. Returns how many records a write error dropped. */
  flush(): number {
    this.flushScheduled = false;
    if (this.pending.length === 0 || this.activeFd < 0) return 0;
    const pending = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    let dropped = 0;
    try {
      const chunk = pending.length === 1 ? (pending[0] as Pending).buf : Buffer.concat(pending.map((p) => p.buf));
      this.writeAll(chunk);
    } catch (first) {
      this.truncateActive();
      // Salvage record by record what still fits, drop the rest (fail closed).
      let failed = false;
      for (const p of pending) {
        if (!failed) {
          try {
            this.writeAll(p.buf);
            continue;
          } catch {
            this.truncateActive();
            failed = true;
          }
        }
        this.options.onDrop('disk_full', p.level, 1);
        dropped += 1;
      }
      if (failed) {
        this.diskFailedUntil = this.options.clock.now() + this.options.diskRetryMs;
        this.options.onError(new Error(`spool write failed, failing closed for ${this.options.diskRetryMs} ms: ${(first as Error).message}`));
      }
    }
    if (this.activeSize >= this.options.segmentBytes) this.rotate();
    return dropped;
  }

  /** fdatasync of the active segment if anything was written since the last one. */
  sync(): void {
    if (!this.dirty || this.activeFd < 0) return;
    try {
      fdatasyncSync(this.activeFd);
      this.dirty = false;
    } catch (err) {
      this.options.onError(err as Error);
    }
  }

  /** Reads the oldest unsent records, from the cursor, without consuming them. */
  peek(maxLines: number, maxBytes: number): SpoolBatch {
    this.flush();
    const entries: StoredEntry[] = [];
    let bytes = 0;
    let pos: Position = { ...this.cursor };
    while (entries.length < maxLines && bytes < maxBytes) {
      const end = this.segEnd(pos.seg);
      if (pos.off >= end) {
        const next = this.segs.find((s) => s > pos.seg);
        if (next === undefined) break;
        pos = { seg: next, off: 0 };
        continue;
      }
      const fd = this.reader(pos.seg);
      const window = Math.min(end - pos.off, Math.max(maxBytes - bytes, 64 * 1024) + HEADER);
      const buf = Buffer.allocUnsafe(window);
      const got = readSync(fd, buf, 0, window, pos.off);
      let at = 0;
      let progressed = false;
      while (at + HEADER <= got && entries.length < maxLines && bytes < maxBytes) {
        const len = buf.readUInt32LE(at + 2);
        const valid = buf[at] === MAGIC0 && buf[at + 1] === MAGIC1 && len <= MAX_RECORD && pos.off + at + HEADER + len <= end;
        if (!valid) {
          const skipTo = this.resync(pos.seg, pos.off + at + 1, end);
          this.countCorrupt({ seg: pos.seg, off: pos.off + at });
          pos = { seg: pos.seg, off: skipTo };
          progressed = true;
          at = -1;
          break;
        }
        if (at + HEADER + len > got) {
          if (progressed || entries.length > 0) break;
          // One record larger than the window: read it alone.
          const one = Buffer.allocUnsafe(HEADER + len);
          readSync(fd, one, 0, one.length, pos.off + at);
          const entry = this.decode(one, 0, len);
          if (entry) entries.push(entry);
          else this.countCorrupt({ seg: pos.seg, off: pos.off + at });
          bytes += HEADER + len;
          at += HEADER + len;
          progressed = true;
          break;
        }
        const entry = this.decode(buf, at, len);
        if (entry === undefined) {
          const skipTo = this.resync(pos.seg, pos.off + at + 1, end);
          this.countCorrupt({ seg: pos.seg, off: pos.off + at });
          pos = { seg: pos.seg, off: skipTo };
          progressed = true;
          at = -1;
          break;
        }
        entries.push(entry);
        bytes += HEADER + len;
        at += HEADER + len;
        progressed = true;
      }
      if (at >= 0) pos = { seg: pos.seg, off: pos.off + at };
      if (!progressed) {
        if (end - pos.off >= HEADER) break;
        // Fewer bytes than a header left in a sealed segment: garbage.
        this.countCorrupt(pos);
        pos = { seg: pos.seg, off: end };
      }
    }
    return { entries, bytes, end: this.normalise(pos) };
  }

  /** Marks everything before `end` as delivered (or dead-lettered): moves the cursor, deletes finished segments. */
  ack(end: Position): void {
    this.cursor = this.normalise(end);
    this.deleteBefore(this.cursor.seg);
    this.recount();
    this.headTs = undefined;
    this.writeCursor();
  }

  /** Bytes waiting (written and pending). */
  get bytes(): number {
    return this.stored + this.pendingBytes;
  }

  get isEmpty(): boolean {
    return this.bytes === 0;
  }

  /** Nanosecond timestamp of the oldest unsent entry, or null when the spool is empty. */
  oldestTs(): string | null {
    if (this.headTs !== undefined) return this.headTs;
    if (this.closed || this.afterClose) return null;
    const batch = this.peek(1, 1);
    this.headTs = batch.entries[0]?.ts ?? null;
    return this.headTs;
  }

  /**
   * Flushes, fsyncs and stops the timers. Appends after close() are still
   * accepted, each written at once (so lines logged by later shutdown hooks
   * are on disk for the next start); release() lets go of the files.
   */
  close(): void {
    if (this.closed || this.afterClose) return;
    this.flush();
    this.sync();
    this.afterClose = true;
    if (this.syncTimer) this.options.clock.clearTimeout(this.syncTimer);
    this.writeCursor();
    if (this.readFd >= 0) {
      closeSync(this.readFd);
      this.readFd = -1;
      this.readSeq = -1;
    }
  }

  /** Closes the files and the lock; appends are refused afterwards. */
  release(): void {
    if (this.closed) return;
    if (!this.afterClose) this.close();
    this.flush();
    this.sync();
    this.closed = true;
    if (this.activeFd >= 0) closeSync(this.activeFd);
    this.activeFd = -1;
    try {
      unlinkSync(join(this.options.dir, 'lock'));
    } catch {
      /* gone already */
    }
  }

  private afterClose = false;

  // --- internals -------------------------------------------------------

  private encode(entry: SpoolEntry): Buffer {
    let labels = this.labelJson.get(entry.labels);
    if (labels === undefined) {
      labels = JSON.stringify(entry.labels);
      this.labelJson.set(entry.labels, labels);
    }
    const meta = entry.meta && Object.keys(entry.meta).length > 0 ? JSON.stringify(entry.meta) : '';
    const json = `${entry.ts}\t${labels}\t${JSON.stringify(entry.line)}\t${meta}`;
    const len = Buffer.byteLength(json);
    const buf = Buffer.allocUnsafe(HEADER + len);
    buf.write(json, HEADER, 'utf8');
    buf[0] = MAGIC0;
    buf[1] = MAGIC1;
    buf.writeUInt32LE(len, 2);
    buf.writeUInt32LE(crc32(buf.subarray(HEADER)), 6);
    return buf;
  }

  private decode(buf: Buffer, at: number, len: number): StoredEntry | undefined {
    const payload = buf.subarray(at + HEADER, at + HEADER + len);
    if (crc32(payload) !== buf.readUInt32LE(at + 6)) return undefined;
    const text = payload.toString('utf8');
    const a = text.indexOf('\t');
    const b = a < 0 ? -1 : text.indexOf('\t', a + 1);
    const c = b < 0 ? -1 : text.indexOf('\t', b + 1);
    if (c < 0) return undefined;
    return new StoredEntry(text.slice(0, a), text.slice(a + 1, b), text.slice(b + 1, c), text.slice(c + 1));
  }

  /** Next offset >= from where a record with a valid CRC starts (or `end`). */
  private resync(seg: number, from: number, end: number): number {
    const fd = this.reader(seg);
    const size = end - from;
    if (size <= 0) return end;
    const buf = Buffer.allocUnsafe(Math.min(size, 16 * 1024 * 1024));
    const got = readSync(fd, buf, 0, buf.length, from);
    for (let i = 0; i + HEADER <= got; i += 1) {
      if (buf[i] !== MAGIC0 || buf[i + 1] !== MAGIC1) continue;
      const len = buf.readUInt32LE(i + 2);
      if (len > MAX_RECORD || from + i + HEADER + len > end) continue;
      if (i + HEADER + len <= got) {
        if (this.decode(buf, i, len) !== undefined) return from + i;
      }
    }
    return from + got >= end ? end : from + got;
  }

  private countCorrupt(at: Position): void {
    const after = at.seg > this.corruptCountedTo.seg || (at.seg === this.corruptCountedTo.seg && at.off >= this.corruptCountedTo.off);
    if (!after) return;
    this.corruptCountedTo = { seg: at.seg, off: at.off + 1 };
    this.options.onDrop('corrupt', 'unknown', 1);
    this.options.onError(new Error(`spool: corrupt record in segment ${at.seg} at offset ${at.off} skipped`));
  }

  private writeAll(buf: Buffer): void {
    let off = 0;
    while (off < buf.length) {
      const n = writeSync(this.activeFd, buf, off, buf.length - off);
      off += n;
      this.activeSize += n;
      this.stored += n;
    }
    this.activeBoundary = this.activeSize;
    this.dirty = true;
    this.sizes.set(this.activeSeq, this.activeSize);
  }

  private truncateActive(): void {
    // Cut a partial record so the segment stays a sequence of whole records.
    const good = this.activeBoundary;
    try {
      ftruncateSync(this.activeFd, good);
    } catch {
      /* nothing more we can do; the reader resyncs over a torn record */
    }
    this.stored -= this.activeSize - good;
    this.activeSize = good;
    this.sizes.set(this.activeSeq, good);
  }

  /** Size of the active segment at the last whole record. */
  private activeBoundary = 0;

  private rotate(): void {
    const next = this.activeSeq + 1;
    let fd: number;
    try {
      fd = openSync(this.segPath(next), 'ax', 0o600);
    } catch (err) {
      this.options.onError(err as Error);
      return;
    }
    try {
      fdatasyncSync(this.activeFd);
    } catch (err) {
      this.options.onError(err as Error);
    }
    closeSync(this.activeFd);
    this.fsyncDir();
    this.activeFd = fd;
    this.activeSeq = next;
    this.activeSize = 0;
    this.activeBoundary = 0;
    this.dirty = false;
    this.segs.push(next);
    this.sizes.set(next, 0);
  }

  private createSegment(seq: number): void {
    this.activeFd = openSync(this.segPath(seq), 'ax', 0o600);
    this.activeSeq = seq;
    this.activeSize = 0;
    this.activeBoundary = 0;
    this.segs = [seq];
    this.sizes.set(seq, 0);
    this.fsyncDir();
  }

  /** Cuts the torn tail of the newest segment: everything after its last valid record. */
  private recoverTail(seq: number): void {
    const path = this.segPath(seq);
    const buf = readFileSync(path);
    let at = 0;
    let lastGood = 0;
    while (at + HEADER <= buf.length) {
      const len = buf.readUInt32LE(at + 2);
      if (buf[at] === MAGIC0 && buf[at + 1] === MAGIC1 && at + HEADER + len <= buf.length && this.decode(buf, at, len) !== undefined) {
        at += HEADER + len;
        lastGood = at;
      } else {
        at += 1; // corrupt in the middle: the reader will resync and count it
      }
    }
    if (lastGood < buf.length) {
      writeFileSync(path, buf.subarray(0, lastGood), { mode: 0o600 });
    }
    this.sizes.set(seq, lastGood);
    this.activeSize = lastGood;
    this.activeBoundary = lastGood;
  }

  private segEnd(seq: number): number {
    if (seq === this.activeSeq) return this.activeSize;
    return this.sizes.get(seq) ?? 0;
  }

  private normalise(pos: Position): Position {
    let p = pos;
    while (p.seg !== this.activeSeq && p.off >= this.segEnd(p.seg)) {
      const next = this.segs.find((s) => s > p.seg);
      if (next === undefined) break;
      p = { seg: next, off: 0 };
    }
    return p;
  }

  private reader(seq: number): number {
    if (this.readSeq === seq && this.readFd >= 0) return this.readFd;
    if (this.readFd >= 0) closeSync(this.readFd);
    this.readFd = openSync(this.segPath(seq), 'r');
    this.readSeq = seq;
    return this.readFd;
  }

  private deleteBefore(seq: number): void {
    for (const s of [...this.segs]) {
      if (s >= seq || s === this.activeSeq) continue;
      if (this.readSeq === s && this.readFd >= 0) {
        closeSync(this.readFd);
        this.readFd = -1;
        this.readSeq = -1;
      }
      try {
        unlinkSync(this.segPath(s));
      } catch {
        /* already gone */
      }
      this.sizes.delete(s);
      this.segs = this.segs.filter((x) => x !== s);
    }
  }

  private recount(): void {
    let total = 0;
    for (const s of this.segs) {
      if (s < this.cursor.seg) continue;
      total += this.segEnd(s);
    }
    this.stored = Math.max(0, total - this.cursor.off);
  }

  private readCursor(): Position {
    const first = this.segs[0] as number;
    try {
      const raw = JSON.parse(readFileSync(join(this.options.dir, 'cursor.json'), 'utf8')) as Partial<Position>;
      const seg = Number(raw.seg);
      const off = Number(raw.off);
      if (!Number.isInteger(seg) || !Number.isInteger(off) || off < 0) return { seg: first, off: 0 };
      if (seg < first || !this.segs.includes(seg)) return seg > this.activeSeq ? { seg: this.activeSeq, off: this.activeSize } : { seg: first, off: 0 };
      return { seg, off: Math.min(off, this.segEnd(seg)) };
    } catch {
      // No cursor (or a torn one after a power cut): replay from the oldest segment;
      // Loki collapses what it already has (same timestamp and line).
      return { seg: first, off: 0 };
    }
  }

  private writeCursor(): void {
    const path = join(this.options.dir, 'cursor.json');
    try {
      writeFileSync(`${path}.tmp`, JSON.stringify(this.cursor), { mode: 0o600 });
      renameSync(`${path}.tmp`, path);
    } catch (err) {
      // Not fatal: a stale cursor replays lines Loki already has, which collapse.
      this.options.onError(err as Error);
    }
  }

  private lock(): void {
    const path = join(this.options.dir, 'lock');
    if (existsSync(path)) {
      const pid = Number(readFileSync(path, 'utf8').trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
        throw new SpoolLockedError(`spool ${this.options.dir} is in use by process ${pid}; give every process its own spoolDir`);
      }
    }
    writeFileSync(path, `${process.pid}\n`, { mode: 0o600 });
  }

  private fsyncDir(): void {
    try {
      const fd = openSync(this.options.dir, 'r');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    } catch {
      /* some filesystems refuse directory fsync */
    }
  }

  private armSync(): void {
    const tick = (): void => {
      if (this.closed) return;
      this.sync();
      this.syncTimer = this.options.clock.setTimeout(tick, this.options.fsyncIntervalMs);
      this.syncTimer.unref?.();
    };
    this.syncTimer = this.options.clock.setTimeout(tick, this.options.fsyncIntervalMs);
    this.syncTimer.unref?.();
  }

  private segPath(seq: number): string {
    return join(this.options.dir, `seg-${String(seq).padStart(16, '0')}.lsp`);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Size of a spool directory's segment files (for tests and tools). */
export function spoolFiles(dir: string): { name: string; size: number }[] {
  return readdirSync(dir)
    .filter((n) => SEGMENT.test(n))
    .sort()
    .map((name) => ({ name, size: fstatSafe(join(dir, name)) }));
}

function fstatSafe(path: string): number {
  try {
    const fd = openSync(path, 'r');
    try {
      return fstatSync(fd).size;
    } finally {
      closeSync(fd);
    }
  } catch {
    return 0;
  }
}
