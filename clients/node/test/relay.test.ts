import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BrowserRelay, createRelayHandler } from '../src/relay';
import { TestUpstream, appEntries } from './helpers/upstream';
import { makeTransport, tempDir } from './helpers/setup';

async function post(port: number, body: string | Buffer, headers: Record<string, string> = { 'Content-Type': 'application/json' }, path = '/logs/relay'): Promise<{ status: number; body: Record<string, unknown>; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: 'POST', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString() || '{}') as Record<string, unknown>, headers: res.headers }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('relay route (plain Node handler)', () => {
  let up: TestUpstream;
  let server: http.Server;
  let port = 0;
  let relay: BrowserRelay;
  let t: ReturnType<typeof makeTransport>['t'];
  let cleanup: () => void;
  before(async () => {
    up = await new TestUpstream().start();
    const d = tempDir();
    cleanup = d.cleanup;
    t = makeTransport(up, d.dir, { instance: 'relay-1', batchWaitMs: 0 }).t;
    relay = new BrowserRelay(t, { ratePerSecond: 1000 });
    server = http.createServer(createRelayHandler(relay));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    await t.shutdown(1000);
    await new Promise<void>((r) => server.close(() => r()));
    await up.close();
    cleanup();
  });

  const batch = (n: number, extra: Record<string, unknown> = {}) => ({
    v: 1,
    session: 'sess-abcdef12',
    batch: n,
    sentAt: Date.now(),
    entries: [
      { ts: String(BigInt(Date.now()) * 1_000_000n), level: 'error', line: 'TypeError: x is undefined', meta: { terminal_id: 'T2', page: '/checkout', secret: { nested: true } } },
      { ts: Date.now() + 0.5, level: 'info', line: 'cart opened' },
    ],
    ...extra,
  });

  it('accepts a batch into the spool; the lines reach Loki with the store label and service=pos-frontend', async () => {
    const r = await post(port, JSON.stringify(batch(1)));
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { accepted: 2, dropped: 0, duplicate: false });
    assert.equal(await t.flush(30_000), true);
    const got = appEntries(up, 'relay-1');
    assert.equal(got.length, 2);
    const err = up.requests.flatMap((q) => q.entries).find((e) => e.line.startsWith('TypeError'));
    assert.deepEqual(err?.labels, { store: 'S001', service: 'pos-frontend', environment: 'test', instance: 'relay-1', level: 'error' });
    assert.equal(err?.meta?.terminal_id, 'T2');
    assert.equal(err?.meta?.page, '/checkout');
    assert.equal(err?.meta?.session, 'sess-abcdef12');
    assert.equal(err?.meta?.secret, undefined, 'only allowed metadata keys');
    assert.equal(t.snapshot().relayAccepted, 2);
  });

  it('a resent batch (same session and batch number) is not spooled twice', async () => {
    const r = await post(port, JSON.stringify(batch(1)));
    assert.equal(r.status, 200);
    assert.equal(r.body.duplicate, true);
  });

  it('gzip bodies are accepted', async () => {
    const r = await post(port, gzipSync(JSON.stringify(batch(2))), { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' });
    assert.equal(r.status, 200);
    assert.equal(r.body.accepted, 2);
  });

  it('a skewed browser clock is corrected from sentAt; entries too old get the arrival time', async () => {
    const now = Date.now();
    const body = {
      v: 1, session: 'sess-skewed01', batch: 1, sentAt: now - 3_600_000,
      entries: [{ ts: String(BigInt(now - 3_600_000) * 1_000_000n), level: 'warn', line: 'skewed browser' }],
    };
    assert.equal((await post(port, JSON.stringify(body))).status, 200);
    const old = { v: 1, session: 'sess-offline1', batch: 1, sentAt: now, entries: [{ ts: String(BigInt(now - 7_200_000) * 1_000_000n), level: 'warn', line: 'offline for two hours' }] };
    assert.equal((await post(port, JSON.stringify(old))).status, 200);
    assert.equal(await t.flush(30_000), true);
    const all = up.requests.flatMap((q) => q.entries);
    const skewed = all.find((e) => e.line === 'skewed browser');
    assert.ok(skewed);
    assert.ok(Math.abs(Number(BigInt(skewed.ts) / 1_000_000n) - now) < 5000, 'shifted to the backend clock');
    assert.ok(Math.abs(Number(skewed.meta?.client_clock_offset_ms) - 3_600_000) < 5000);
    const offline = all.find((e) => e.line === 'offline for two hours');
    assert.ok(offline);
    assert.ok(Math.abs(Number(BigInt(offline.ts) / 1_000_000n) - now) < 5000, 'inside Loki out-of-order window');
    assert.equal(offline.meta?.client_ts, String(BigInt(now - 7_200_000) * 1_000_000n));
  });

  it('refuses what is not the wire format, with 400/413/415/405', async () => {
    const bad: [unknown, RegExp][] = [
      [[], /JSON object/],
      [{ ...batch(3), v: 2 }, /v must be 1/],
      [{ ...batch(3), session: 'x' }, /session/],
      [{ ...batch(3), batch: -1 }, /batch/],
      [{ ...batch(3), sentAt: 'now' }, /sentAt/],
      [{ ...batch(3), entries: [] }, /entries/],
      [{ ...batch(3), entries: [{ ts: 'yesterday', level: 'info', line: 'x' }] }, /ts/],
      [{ ...batch(3), entries: [{ ts: '1', level: 'fatal', line: 'x' }] }, /level/],
      [{ ...batch(3), entries: [{ ts: '1', level: 'info', line: 5 }] }, /line/],
      [{ ...batch(3), entries: [{ ts: '1', level: 'info', line: 'x', meta: [] }] }, /meta/],
      [{ ...batch(3), entries: [7] }, /object/],
      [{ ...batch(3), service: 'pos-backend' }, /not relayed/],
      [{ ...batch(3), service: 5 }, /service/],
    ];
    for (const [body, re] of bad) {
      const r = await post(port, JSON.stringify(body));
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.match(String(r.body.error), re);
    }
    assert.equal((await post(port, '{not json')).status, 400);
    assert.equal((await post(port, 'x'.repeat(70000))).status, 413);
    assert.equal((await post(port, '{}', { 'Content-Type': 'application/xml' })).status, 415);
    const many = { ...batch(4), entries: Array.from({ length: 501 }, () => ({ ts: '1', level: 'info', line: 'x' })) };
    assert.equal((await post(port, JSON.stringify(many))).status, 400);
    const get = await new Promise<number>((resolve) => http.get({ host: '127.0.0.1', port, path: '/logs/relay' }, (res) => { res.resume(); resolve(res.statusCode ?? 0); }));
    assert.equal(get, 405);
  });

  it('cuts over-long lines and marks them', async () => {
    const r = await post(port, JSON.stringify({ ...batch(5), entries: [{ ts: String(BigInt(Date.now()) * 1_000_000n), level: 'info', line: 'L'.repeat(20000) }] }));
    assert.equal(r.status, 200);
    assert.equal(await t.flush(30_000), true);
    const e = up.requests.flatMap((q) => q.entries).find((x) => x.line.startsWith('LLL'));
    assert.equal(e?.line.length, 16384);
    assert.equal(e?.meta?.truncated, '1');
  });
});

describe('relay limits', () => {
  it('rate-limits per client (429 + Retry-After), answers 503 + Retry-After on a full disk, counts relayed lines as info class', async () => {
    const up = await new TestUpstream().start();
    const d = tempDir();
    const { t } = makeTransport(up, d.dir, { instance: 'relay-2' });
    const relay = new BrowserRelay(t, { ratePerSecond: 1 });
    const body = (n: number) => ({ v: 1, session: 'sess-rate0001', batch: n, sentAt: 1000, entries: [{ ts: '1000000000', level: 'info', line: 'x' }] });
    assert.equal(relay.accept(body(1), 'a', 1000).status, 200);
    assert.equal(relay.accept(body(2), 'a', 1000).status, 200);
    const limited = relay.accept(body(3), 'a', 1000);
    assert.equal(limited.status, 429);
    assert.equal(limited.headers['Retry-After'], '2');
    assert.equal(relay.accept(body(3), 'b', 1000).status, 200, 'another client has its own budget');
    assert.equal(relay.accept(body(4), 'a', 3000).status, 200, 'refilled');
    await t.shutdown(1000);
    // A real full disk (1 MiB tmpfs): the spool fails closed, the relay answers 503 + Retry-After.
    const mnt = join(d.dir, 'tiny');
    mkdirSync(mnt);
    let mounted = false;
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt], { stdio: 'pipe' });
      mounted = true;
    } catch (err) {
      console.log(`SKIP: relay 503 on a full disk: cannot mount a 1 MiB tmpfs (needs root): ${(err as Error).message.split('\n')[0]}`);
    }
    if (mounted) {
      try {
        const tf = makeTransport(up, join(mnt, 'spool'), { instance: 'relay-full', startupJitterMs: 600_000, spoolMaxBytes: 64 * 1024 * 1024, diskRetryMs: 60_000 }).t;
        const rf = new BrowserRelay(tf, { ratePerSecond: 0 });
        let status = 200;
        for (let n = 0; n < 200 && status === 200; n += 1) {
          status = rf.accept({ v: 1, session: 'sess-full0001', batch: n, sentAt: Date.now(), entries: Array.from({ length: 20 }, (_, i) => ({ ts: String(BigInt(Date.now()) * 1_000_000n + BigInt(i)), level: 'warn', line: 'f'.repeat(2000) })) }, 'c').status;
        }
        assert.equal(status, 503, 'the disk filled up');
        const full = rf.accept(body(5), 'c', 5000);
        assert.equal(full.status, 503);
        assert.equal(full.headers['Retry-After'], '30');
        assert.ok(tf.snapshot().relayRefused > 0);
        await tf.shutdown(0);
      } finally {
        execFileSync('umount', ['-l', mnt]);
      }
    }
    await t.shutdown(1000);
    // Relayed "error" lines count as info class for the byte cap.
    const d2 = tempDir();
    const t2 = makeTransport(up, d2.dir, { instance: 'relay-3', spoolMaxBytes: 20_000, startupJitterMs: 600_000 }).t;
    const r2 = new BrowserRelay(t2, { ratePerSecond: 0 });
    let dropped = 0;
    for (let n = 0; n < 20; n += 1) {
      const res = r2.accept({ v: 1, session: 'sess-flood001', batch: n, sentAt: Date.now(), entries: Array.from({ length: 10 }, (_, i) => ({ ts: String(BigInt(Date.now()) * 1_000_000n + BigInt(i)), level: 'error', line: 'e'.repeat(200) })) }, 'x');
      dropped += Number(res.body.dropped ?? 0);
    }
    assert.ok(dropped > 0, 'the cap refused relayed error lines');
    assert.ok(t2.snapshot().spoolBytes <= 20_000);
    assert.equal(t2.append({ level: 'error', line: 'the backend own error' }), 'ok', "the backend's own errors still get in");
    await t2.shutdown(0);
    d2.cleanup();
    await t.shutdown(1000);
    await up.close();
    d.cleanup();
  });
});
