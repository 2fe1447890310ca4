import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fullJitter, parseRetryAfter, rateLimitDelay } from '../../src/backoff.js';
import { Head, dueIn, encodeFitting, takeHead } from '../../src/batcher.js';
import { lokiEncoder, relayEncoder } from '../../src/encode.js';
import { type EntryStatics, type LogEntry, buildEntry, safeStringify, serializeError, snakeCase } from '../../src/entry.js';
import { atLeast, spoolClass } from '../../src/levels.js';
import { DEFAULT_METADATA_KEYS, resolveOptions } from '../../src/options.js';
import { classify } from '../../src/response.js';
import { NanoClock, entryKey, nsToMs } from '../../src/timestamp.js';
import { base64Utf8, cutUtf8, utf8, utf8Length } from '../../src/utf8.js';

const statics = (over: Partial<EntryStatics> = {}): EntryStatics => ({
  session: 'sessionAAAAAAAAA', meta: { session: 'sessionAAAAAAAAA', terminal_id: 'T1' }, metadataKeys: new Set(DEFAULT_METADATA_KEYS), maxLineBytes: 16384, ...over,
});

let clockMs = 1_767_430_800_000;
const clock = new NanoClock(() => clockMs, () => 0.5);
function entry(level: LogEntry['level'], message: string, context?: Record<string, unknown>, s = statics()): LogEntry {
  const ts = clock.next();
  return buildEntry(level, message, undefined, false, context, ts, entryKey(ts, s.session), s);
}

describe('backoff', () => {
  it('full jitter stays in [0, min(max, base * 2^n))', () => {
    for (let n = 0; n < 12; n += 1) {
      assert.equal(fullJitter(n, 100, 5000, () => 0), 0);
      assert.equal(fullJitter(n, 100, 5000, () => 0.999999), Math.floor(0.999999 * Math.min(5000, 100 * 2 ** n)));
    }
    assert.equal(fullJitter(1000, 100, 5000, () => 0.5), 2500, 'no overflow on a long outage');
  });

  it('Retry-After: seconds, HTTP-date, absent (a hidden header reads as null), garbage', () => {
    const now = Date.parse('2026-01-03T10:00:00Z');
    assert.equal(parseRetryAfter('7', now), 7000);
    assert.equal(parseRetryAfter(' 0 ', now), 0);
    assert.equal(parseRetryAfter('Sat, 03 Jan 2026 10:00:30 GMT', now), 30_000);
    assert.equal(parseRetryAfter('Sat, 03 Jan 2026 09:00:00 GMT', now), 0, 'a date in the past: at once');
    assert.equal(parseRetryAfter(null, now), undefined);
    assert.equal(parseRetryAfter('soon', now), undefined);
    assert.equal(parseRetryAfter('', now), undefined);
  });

  it('a 429 waits Retry-After (capped, small jitter); without a readable one at least the fallback, growing', () => {
    const t = { backoffBaseMs: 1000, backoffMaxMs: 60000, retryAfterMaxMs: 300000, rateLimitFallbackMs: 5000 };
    assert.equal(rateLimitDelay(2000, 0, t, () => 0), 2000);
    assert.ok(rateLimitDelay(2000, 0, t, () => 0.99) <= 2000 + 201);
    assert.equal(rateLimitDelay(10_000_000, 0, t, () => 0), 300000, 'capped');
    for (let n = 0; n < 10; n += 1) {
      assert.ok(rateLimitDelay(undefined, n, t, () => 0) >= 5000, 'never below the fallback: no tight loop');
      assert.ok(rateLimitDelay(undefined, n, t, () => 0.99) <= 300000);
    }
    assert.ok(rateLimitDelay(undefined, 6, t, () => 0.99) > rateLimitDelay(undefined, 0, t, () => 0.99));
  });
});

describe('answers', () => {
  const r = (status: number | null, retryAfter: string | null = null, body = '') => ({ status, retryAfter, body });
  it('classifies like the relay table and the transport', () => {
    assert.deepEqual(classify(r(204), 3, 0), { kind: 'ok', relayDropped: 0, duplicate: false });
    assert.deepEqual(classify(r(200, null, '{"accepted":2,"dropped":1,"duplicate":false}'), 3, 0), { kind: 'ok', relayDropped: 1, duplicate: false });
    assert.deepEqual(classify(r(200, null, '{"accepted":0,"dropped":0,"duplicate":true}'), 3, 0), { kind: 'ok', relayDropped: 0, duplicate: true });
    assert.deepEqual(classify(r(200, null, '{broken'), 3, 0), { kind: 'ok', relayDropped: 0, duplicate: false });
    assert.deepEqual(classify(r(429, '3'), 3, 0), { kind: 'rate', retryAfterMs: 3000 });
    assert.deepEqual(classify(r(429), 3, 0), { kind: 'rate', retryAfterMs: undefined });
    assert.deepEqual(classify(r(503, '30'), 3, 0), { kind: 'rate', retryAfterMs: 30000 }, "the relay's full disk");
    assert.deepEqual(classify(r(503), 3, 0), { kind: 'retry', reason: 'server' });
    assert.deepEqual(classify(r(502), 3, 0), { kind: 'retry', reason: 'server' });
    assert.deepEqual(classify(r(408), 3, 0), { kind: 'retry', reason: 'server' });
    assert.deepEqual(classify({ ...r(null), timedOut: true }, 3, 0), { kind: 'retry', reason: 'timeout' });
    assert.deepEqual(classify(r(null), 3, 0), { kind: 'retry', reason: 'network' });
    assert.deepEqual(classify(r(400), 3, 0), { kind: 'split', status: 400 });
    assert.deepEqual(classify(r(400), 1, 0), { kind: 'reject', status: 400 });
    assert.deepEqual(classify(r(413), 2, 0), { kind: 'split', status: 413 });
    assert.deepEqual(classify(r(413), 1, 0), { kind: 'reject', status: 413 });
    for (const s of [401, 403, 404, 405, 415]) assert.deepEqual(classify(r(s), 3, 0), { kind: 'pause', status: s });
  });
});

describe('entries', () => {
  it('the line is JSON; metadata keys (camelCase too) go to structured metadata as strings', () => {
    const e = buildEntry('warn', 'cart opened', undefined, false, { orderId: 'O-1', trace_id: 'abc', items: 3, level: 'x', nested: { a: 1 } }, '1767430800000000001', 'k', statics());
    assert.deepEqual(JSON.parse(e.line), { level: 'warn', message: 'cart opened', items: 3, ctx_level: 'x', nested: { a: 1 } });
    assert.deepEqual(e.meta, { session: 'sessionAAAAAAAAA', terminal_id: 'T1', order_id: 'O-1', trace_id: 'abc' });
    assert.equal(e.p, 2);
    assert.equal(e.b, utf8Length(JSON.stringify({ ts: e.ts, level: e.level, line: e.line, meta: e.meta })));
  });

  it('errors: name, message, stack, cause; anything thrown', () => {
    const err = new TypeError('bad', { cause: new Error('root') });
    const info = serializeError(err);
    assert.equal(info.name, 'TypeError');
    assert.equal(info.message, 'bad');
    assert.match(info.stack ?? '', /TypeError: bad/);
    assert.equal(info.cause?.message, 'root');
    assert.deepEqual(serializeError('just text'), { message: 'just text' });
    assert.deepEqual(serializeError(42), { message: '42', value: '42' });
    const e = buildEntry('error', 'payment failed', err, true, undefined, '1', 'k', statics());
    assert.equal((JSON.parse(e.line) as { error: { message: string } }).error.message, 'bad');
  });

  it('never throws on odd context: cycles, bigints, functions', () => {
    const a: Record<string, unknown> = { n: 1n, f: () => 1 };
    a.self = a;
    assert.equal(safeStringify(a), '{"n":"1","self":"[Circular]"}');
    const e = buildEntry('info', 'odd', undefined, false, { a }, '1', 'k', statics());
    assert.ok(JSON.parse(e.line));
  });

  it('a line over maxLineBytes is cut, still JSON, with metadata truncated=1', () => {
    const big = 'x'.repeat(50_000);
    const e = buildEntry('error', big, new Error(big), true, { blob: big }, '1', 'k', statics({ maxLineBytes: 4096 }));
    assert.ok(utf8Length(e.line) <= 4096);
    const parsed = JSON.parse(e.line) as { truncated_bytes: number; message: string };
    assert.ok(parsed.truncated_bytes > 100_000);
    assert.equal(e.meta.truncated, '1');
  });

  it('snake_case and levels', () => {
    assert.equal(snakeCase('terminalId'), 'terminal_id');
    assert.equal(spoolClass('debug'), 0);
    assert.equal(spoolClass('info'), 1);
    assert.equal(spoolClass('error'), 2);
    assert.ok(atLeast('warn', 'info'));
    assert.ok(!atLeast('debug', 'info'));
  });
});

describe('timestamps', () => {
  it('nanoseconds, strictly increasing in a millisecond and when the clock steps back; keys sort by time', () => {
    let now = 1_767_430_800_123;
    const c = new NanoClock(() => now, () => 0.25);
    const a = c.next();
    const b = c.next();
    now -= 5000;
    const d = c.next();
    now += 10_000;
    const e = c.next();
    assert.equal(a, '1767430800123249000');
    assert.equal(b, '1767430800123249001');
    assert.equal(d, '1767430800123249002', 'a clock stepping back does not go back');
    assert.equal(e.slice(0, 13), '1767430805123');
    assert.equal(nsToMs(a), 1_767_430_800_123);
    const keys = [entryKey(e, 's'), entryKey(a, 's'), entryKey('999', 's'), entryKey(b, 's')];
    assert.deepEqual([...keys].sort(), [entryKey('999', 's'), entryKey(a, 's'), entryKey(b, 's'), entryKey(e, 's')]);
  });
});

describe('batches and bodies', () => {
  const entries = Array.from({ length: 50 }, (_, i) => entry(i % 2 ? 'info' : 'error', `line ${i} ${'é'.repeat(20)}`, { order_id: `O-${i}` }));
  const id = { key: 'sessionAAAAAAAAA:3', session: 'sessionAAAAAAAAA', batch: 3 };

  it('relay body: wire format v1', () => {
    const body = JSON.parse(relayEncoder('pos-frontend')(entries.slice(0, 2), id, 1767430800123.5)) as Record<string, unknown>;
    assert.deepEqual(Object.keys(body), ['v', 'session', 'batch', 'sentAt', 'service', 'entries']);
    assert.equal(body.v, 1);
    assert.equal(body.batch, 3);
    assert.equal(body.sentAt, 1767430800123.5);
    const e0 = (body.entries as Record<string, unknown>[])[0];
    assert.deepEqual(Object.keys(e0 ?? {}), ['ts', 'level', 'line', 'meta']);
    assert.equal(typeof e0?.ts, 'string');
  });

  it('Loki body: one stream, [ts, line, metadata]; no empty metadata object', () => {
    const bare = { ...entries[0] as LogEntry, meta: {} };
    const body = JSON.parse(lokiEncoder({ service: 'pos-frontend', store: 'S001', environment: 'test' })([entries[1] as LogEntry, bare], id, 0)) as { streams: { stream: unknown; values: unknown[][] }[] };
    assert.equal(body.streams.length, 1);
    assert.deepEqual(body.streams[0]?.stream, { service: 'pos-frontend', store: 'S001', environment: 'test' });
    assert.equal(body.streams[0]?.values[0]?.length, 3);
    assert.equal(body.streams[0]?.values[1]?.length, 2);
  });

  it('batches by count and bytes; the exact body never exceeds maxBytes', () => {
    assert.equal(takeHead(entries, { maxEntries: 7, maxBytes: 1e9 }).taken.length, 7);
    assert.equal(takeHead(entries, { maxEntries: 7, maxBytes: 1e9 }).full, true);
    assert.equal(takeHead(entries.slice(0, 3), { maxEntries: 7, maxBytes: 1e9 }).full, false);
    const h = new Head({ maxEntries: 100, maxBytes: 2000 });
    let n = 0;
    for (const e of entries) if (h.add(e)) n += 1;
    assert.ok(n > 1 && n < 50 && h.full);
    for (const enc of [relayEncoder('pos-frontend'), lokiEncoder({ store: 'S001' })]) {
      for (const max of [1500, 3000, 9000]) {
        const out = encodeFitting(entries, max, enc, id, 1);
        assert.ok(out.body.length <= max, `${out.body.length} <= ${max}`);
        assert.equal(out.body.length, utf8(out.text).length);
        const more = encodeFitting(entries.slice(0, out.entries.length + 1), 1e9, enc, id, 1);
        assert.ok(out.entries.length === entries.length || more.body.length > max * 0.8, 'close to the limit');
      }
    }
  });

  it('due: forced, full, or the oldest is batchWaitMs old', () => {
    const ms = nsToMs((entries[0] as LogEntry).ts);
    assert.equal(dueIn([], false, ms, 1000, true), Infinity);
    assert.equal(dueIn(entries, false, ms + 200, 1000, false), 800);
    assert.equal(dueIn(entries, false, ms + 1200, 1000, false), 0);
    assert.equal(dueIn(entries, true, ms, 1000, false), 0);
    assert.equal(dueIn(entries, false, ms, 1000, true), 0);
  });
});

describe('options', () => {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  it('relay by default, with its defaults', () => {
    const o = resolveOptions({}, true, b64);
    assert.equal(o.target, 'relay');
    assert.equal(o.url, '/logs/relay');
    assert.equal(o.credentials, 'same-origin');
    assert.deepEqual(o.headers, {});
    assert.equal(o.gzip, true);
    assert.equal(o.level, 'info');
    assert.equal(o.consoleLevel, 'debug');
    assert.equal(o.batchMaxEntries, 500);
    assert.equal(o.batchMaxBytes, 60000);
    assert.equal(o.keepaliveMaxBytes, 60000);
    assert.equal(o.spoolMaxBytes, 10 * 1024 * 1024);
    assert.equal(resolveOptions({}, false, b64).gzip, false, 'no CompressionStream: no gzip');
  });

  it('direct: the store credential, Basic auth, no cookies, labels; gzip (the edge\'s preflight allows Content-Encoding)', () => {
    const direct = { target: 'direct', pushUrl: 'https://obs.example/loki/api/v1/push', store: 'S001', username: 'S001', password: 'tok' } as const;
    const o = resolveOptions(direct, true, b64);
    assert.deepEqual(o.headers, { Authorization: `Basic ${b64('S001:tok')}` });
    assert.equal(o.credentials, 'omit');
    assert.deepEqual(o.labels, { service: 'pos-frontend', store: 'S001', environment: 'production' });
    assert.equal(o.gzip, true);
    assert.equal(resolveOptions({ ...direct, gzip: false }, true, b64).gzip, false);
    assert.equal(resolveOptions(direct, false, b64).gzip, false, 'no CompressionStream: no gzip');
    assert.throws(() => resolveOptions({ target: 'direct', pushUrl: 'https://x', store: 'S001', username: 'S002', password: 't' }, true, b64), /must equal store/);
    assert.throws(() => resolveOptions({ target: 'direct', store: 'S001', username: 'S001', password: 't' }, true, b64), /pushUrl is required/);
  });

  it('refuses options that cannot work', () => {
    assert.throws(() => resolveOptions({ keepaliveMaxBytes: 70000 }, true, b64), /65536/);
    assert.throws(() => resolveOptions({ batchMaxBytes: 8000, maxLineBytes: 16384 }, true, b64), /room for one line/);
    assert.throws(() => resolveOptions({ batchWaitMs: -1 }, true, b64), /batchWaitMs/);
    assert.throws(() => resolveOptions({ target: 'beacon' as 'relay' }, true, b64), /target/);
  });
});

describe('utf8', () => {
  it('lengths, cuts and base64 of any text', () => {
    for (const s of ['abc', 'é', '€', '😀', 'a😀b', '\ud800x']) assert.equal(utf8Length(s), utf8(s).length);
    assert.equal(cutUtf8('a😀b', 2), 'a', 'never inside a character');
    assert.equal(cutUtf8('a😀b', 5), 'a😀');
    assert.equal(base64Utf8('S001:tök'), Buffer.from('S001:tök').toString('base64'));
  });
});
