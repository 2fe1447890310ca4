import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, it } from 'node:test';
import { Backoff, parseRetryAfter } from '../src/backoff';
import { BundleError, bundleFromEnv, loadBundle, parseEnvFile } from '../src/bundle';
import { sleep, systemClock } from '../src/clock';
import { PushClient, parseHostPort } from '../src/http';
import { LabelGuard } from '../src/labels';
import { TransportMetrics } from '../src/metrics';
import { resolveOptions } from '../src/options';
import { buildPushBody } from '../src/shipper';
import { TimestampSource } from '../src/timestamp';
import { LokiTransport } from '../src/transport';
import { FakeClock } from './helpers/fake-clock';
import { TestUpstream } from './helpers/upstream';
import { makeTransport, tempDir, TOKEN } from './helpers/setup';

describe('store bundle', () => {
  const text = [
    '# Credentials of store S001 (Store 001 Downtown) for the central Loki.',
    'STORE_ID=S001',
    'STORE_NAME="Store 001 \\"Downtown\\""',
    'LOKI_URL=https://obs.example.internal',
    'LOKI_PUSH_URL=https://obs.example.internal/loki/api/v1/push',
    'export LOKI_USERNAME=S001',
    "LOKI_PASSWORD='abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKL'",
    'IGNORED_LINE_WITHOUT_EQUALS',
    'EXTRA=value # a comment',
    '',
  ].join('\n');

  it('parses the shell-style lines the secrets role writes', () => {
    const env = parseEnvFile(text);
    assert.equal(env.STORE_NAME, 'Store 001 "Downtown"');
    assert.equal(env.LOKI_USERNAME, 'S001');
    assert.equal(env.LOKI_PASSWORD, 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKL');
    assert.equal(env.EXTRA, 'value');
    const b = bundleFromEnv(env);
    assert.deepEqual(b, {
      storeId: 'S001', storeName: 'Store 001 "Downtown"', lokiUrl: 'https://obs.example.internal',
      pushUrl: 'https://obs.example.internal/loki/api/v1/push', username: 'S001', password: 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKL',
    });
  });

  it('derives the push URL from LOKI_URL and the username from STORE_ID', () => {
    const b = bundleFromEnv({ STORE_ID: 'S002', LOKI_URL: 'https://obs.example.internal/', LOKI_PASSWORD: 'x'.repeat(40) });
    assert.equal(b.pushUrl, 'https://obs.example.internal/loki/api/v1/push');
    assert.equal(b.username, 'S002');
  });

  it('refuses a bundle the edge would refuse, naming the variable', () => {
    assert.throws(() => bundleFromEnv({ LOKI_URL: 'https://x', LOKI_PASSWORD: 'p' }), /STORE_ID is missing/);
    assert.throws(() => bundleFromEnv({ STORE_ID: 'S 1', LOKI_URL: 'https://x', LOKI_PASSWORD: 'p' }), /not a store id/);
    assert.throws(() => bundleFromEnv({ STORE_ID: 'S001', LOKI_USERNAME: 'S002', LOKI_URL: 'https://x', LOKI_PASSWORD: 'p' }), /differs from STORE_ID/);
    assert.throws(() => bundleFromEnv({ STORE_ID: 'S001', LOKI_URL: 'https://x' }), /LOKI_PASSWORD/);
    assert.throws(() => bundleFromEnv({ STORE_ID: 'S001', LOKI_PASSWORD: 'p' }), /neither LOKI_PUSH_URL nor LOKI_URL/);
    assert.throws(() => bundleFromEnv({ STORE_ID: 'S001', LOKI_PUSH_URL: 'not a url', LOKI_PASSWORD: 'p' }), /not a URL/);
    assert.throws(() => bundleFromEnv({ STORE_ID: 'S001', LOKI_PUSH_URL: 'ftp://x/y', LOKI_PASSWORD: 'p' }), /http\(s\)/);
    assert.throws(() => loadBundle('/nonexistent/S001.env'), BundleError);
  });

  it('loads a bundle file', () => {
    const { dir, cleanup } = tempDir();
    writeFileSync(join(dir, 'S001.env'), text);
    assert.equal(loadBundle(join(dir, 'S001.env')).storeId, 'S001');
    cleanup();
  });
});

describe('backoff, Retry-After, clock', () => {
  it('full jitter under an exponential ceiling, capped', () => {
    const b = new Backoff({ baseMs: 100, capMs: 1000, random: () => 0.999 });
    const seq = Array.from({ length: 6 }, () => b.next());
    assert.deepEqual(seq, [99, 199, 399, 799, 999, 999]);
    assert.equal(b.attempts, 6);
    b.reset();
    assert.equal(b.next(), 99);
    assert.equal(new Backoff({ baseMs: 100, capMs: 1000, random: () => 0 }).next(), 0);
  });

  it('parses Retry-After seconds and HTTP dates', () => {
    const now = Date.parse('2026-01-15T09:00:00Z');
    assert.equal(parseRetryAfter('30', now, 600_000), 30_000);
    assert.equal(parseRetryAfter('Thu, 15 Jan 2026 09:01:00 GMT', now, 600_000), 60_000);
    assert.equal(parseRetryAfter('Thu, 15 Jan 2026 08:00:00 GMT', now, 600_000), 0);
    assert.equal(parseRetryAfter('99999', now, 600_000), 600_000);
    assert.equal(parseRetryAfter('soon', now, 1000), undefined);
    assert.equal(parseRetryAfter('', now, 1000), undefined);
    assert.equal(parseRetryAfter(undefined, now, 1000), undefined);
  });

  it('sleep ends at once on an aborted signal, and on abort', async () => {
    const ac = new AbortController();
    ac.abort();
    await sleep(systemClock, 60_000, ac.signal);
    const ac2 = new AbortController();
    const p = sleep(systemClock, 60_000, ac2.signal);
    ac2.abort();
    await p;
    await Promise.all([sleep(systemClock, 1), new Promise((r) => setTimeout(r, 5))]);
  });

  it('timestamps: nanoseconds, strictly increasing, observe() moves the floor', () => {
    const clock = new FakeClock(1_000);
    const ts = new TimestampSource(clock);
    assert.equal(ts.next(), 1_000_000_000n);
    assert.equal(ts.next(), 1_000_000_001n);
    ts.observe(5_000_000_000n);
    assert.equal(ts.next(), 5_000_000_001n);
  });
});

describe('labels, options, push body, metrics', () => {
  it('the guard refuses bad label sets at construction', () => {
    assert.throws(() => new LabelGuard({ base: { 'bad-name': 'x' }, dynamicKeys: [], maxValuesPerKey: 1 }), /not a valid Loki label name/);
    assert.throws(() => new LabelGuard({ base: {}, dynamicKeys: ['store'], maxValuesPerKey: 1 }), /cannot be dynamic/);
    const many = Object.fromEntries(Array.from({ length: 15 }, (_, i) => [`k${i}`, 'v']));
    assert.throws(() => new LabelGuard({ base: many, dynamicKeys: [], maxValuesPerKey: 1 }), /at most 15/);
    const g = new LabelGuard({ base: { store: 'S001' }, dynamicKeys: ['module'], maxValuesPerKey: 5 });
    assert.equal(g.resolve('info', { module: 'a' }).labels, g.resolve('info', { module: 'a', ignored: undefined }).labels, 'one object per stream');
  });

  it('options are validated', () => {
    assert.throws(() => resolveOptions({ service: '' }), /service/);
    assert.throws(() => resolveOptions({ service: 'x', batchMaxLines: -1 }), /batchMaxLines/);
    assert.throws(() => resolveOptions({ service: 'x', batchMaxLines: 0 }), /batchMaxLines must be >= 1/);
    assert.throws(() => resolveOptions({ service: 'x', dropDebugAt: 1.5 }), /dropDebugAt/);
    const o = resolveOptions({ service: 'pos-backend' });
    assert.equal(o.batchMaxBytes, 1024 * 1024);
    assert.match(o.spoolDir, /loki-spool/);
  });

  it('the push body is Loki JSON: one stream per label set, structured metadata as the third element', () => {
    const a = Object.freeze({ store: 'S001', level: 'info' });
    const body = JSON.parse(buildPushBody([
      { ts: '1', labels: a, line: 'one' },
      { ts: '2', labels: { store: 'S001', level: 'error' }, line: 'two', meta: { trace_id: 't' } },
      { ts: '3', labels: a, line: 'three', meta: {} },
    ])) as { streams: { stream: Record<string, string>; values: unknown[][] }[] };
    assert.equal(body.streams.length, 2);
    assert.deepEqual(body.streams[0]?.values, [['1', 'one'], ['3', 'three']]);
    assert.deepEqual(body.streams[1]?.values, [['2', 'two', { trace_id: 't' }]]);
  });

  it('Prometheus text: every family typed, labels escaped', () => {
    const m = new TransportMetrics();
    m.drop('spool_full', 'debug', 3);
    m.drop('rejected', 'info', 0);
    m.retry('timeout');
    m.request('204');
    const text = m.prometheus({ store: 'S"1' });
    assert.match(text, /loki_transport_dropped_lines_total\{store="S\\"1",reason="spool_full"\} 3/);
    assert.match(text, /loki_transport_dropped_lines_by_level_total\{store="S\\"1",level="debug"\} 3/);
    assert.match(text, /loki_transport_retries_total\{store="S\\"1",reason="timeout"\} 1/);
    assert.match(text, /loki_transport_requests_total\{store="S\\"1",code="204"\} 1/);
    for (const line of text.trim().split('\n')) assert.match(line, /^(# (HELP|TYPE) \w+ .+|\w+(\{.*\})? -?\d+(\.\d+)?)$/);
    assert.match(new TransportMetrics().prometheus(), /^loki_transport_sent_lines_total 0$/m);
  });
});

describe('heartbeat', () => {
  it('is one info line a minute with the drop counters (format documented in the README)', async () => {
    const up = await new TestUpstream().start();
    const { dir, cleanup } = tempDir();
    const clock = new FakeClock();
    const { t } = makeTransport(up, dir, { instance: 'hb-1', clock, heartbeatIntervalMs: 60_000, spoolMaxBytes: 10_000, requestTimeoutMs: 3_600_000 });
    for (let i = 0; i < 200; i += 1) t.append({ level: 'debug', line: `d${'x'.repeat(100)}` }); // some are dropped by the cap
    await clock.advance(60_000);
    const snap = t.snapshot();
    assert.ok(snap.dropped.spool_full > 0);
    const ok = await (async () => {
      for (let i = 0; i < 200; i += 1) {
        await clock.advance(100);
        await new Promise((r) => setTimeout(r, 2));
        if (up.entries().filter((e) => e.line.startsWith('{"type":"heartbeat"')).length >= 2) return true;
      }
      return false;
    })();
    assert.ok(ok, 'two heartbeats delivered');
    const beats = up.entries().filter((e) => e.line.startsWith('{"type":"heartbeat"'));
    const [first, second] = beats.map((b) => JSON.parse(b.line) as Record<string, unknown>);
    assert.deepEqual(beats[0]?.labels, { store: 'S001', service: 'pos-backend', environment: 'test', instance: 'hb-1', level: 'info' });
    assert.deepEqual(Object.keys(first ?? {}), [
      'type', 'v', 'unix', 'uptime_s', 'sent_total', 'dropped_total', 'dropped_since_last',
      'dropped_spool_full', 'dropped_disk_full', 'dropped_rejected', 'dropped_too_large', 'dropped_corrupt',
      'retries_total', 'spool_bytes', 'spool_oldest_age_s', 'breaker', 'clock_skew_s', 'labels_refused',
    ]);
    assert.equal(first?.dropped_total, 0);
    assert.equal(second?.dropped_total, snap.droppedTotal);
    assert.equal(second?.dropped_since_last, snap.droppedTotal);
    assert.ok(Math.abs((second?.unix as number) * 1000 - clock.now()) < 120_000, 'unix: seconds since the epoch at the heartbeat');
    assert.equal(first?.type, 'heartbeat');
    assert.equal(first?.breaker, 'closed');
    await t.shutdown(0);
    await up.close();
    cleanup();
  });
});

describe('TLS with a private CA and a fixed address (like curl --cacert --resolve)', () => {
  it('verifies the edge certificate against the CA file, refuses without it', async (t) => {
    const { dir, cleanup } = tempDir();
    try {
      const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
      run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=obs test CA']);
      run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=obs.test.internal']);
      writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=DNS:obs.test.internal\n');
      run(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'ext.cnf']);
    } catch (err) {
      console.log(`SKIP: openssl cannot make a test CA here: ${(err as Error).message.split('\n')[0]}`);
      t.skip('no openssl');
      cleanup();
      return;
    }
    const got: { host?: string; lines: number }[] = [];
    const server = https.createServer({ key: readFileSync(join(dir, 'server.key')), cert: readFileSync(join(dir, 'server.crt')) }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.parse(gunzipSync(Buffer.concat(chunks)).toString()) as { streams: { values: unknown[] }[] };
        got.push({ host: req.headers.host, lines: body.streams.reduce((a, s) => a + s.values.length, 0) });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const url = `https://obs.test.internal:${port}/loki/api/v1/push`;
    const client = new PushClient({ url, credentials: () => ({ username: 'S001', password: TOKEN }), ca: readFileSync(join(dir, 'ca.crt')), connectTo: '127.0.0.1', timeoutMs: 5000, gzipLevel: 1, userAgent: 'test', clock: systemClock });
    const r = await client.push(buildPushBody([{ ts: '1', labels: { store: 'S001' }, line: 'tls' }]));
    assert.equal(r.status, 204);
    assert.equal(got[0]?.host, `obs.test.internal:${port}`);
    client.close();
    const untrusting = new PushClient({ url, credentials: () => ({ username: 'S001', password: TOKEN }), connectTo: `127.0.0.1:${port}`, timeoutMs: 5000, gzipLevel: 1, userAgent: 'test', clock: systemClock });
    await assert.rejects(untrusting.push('{"streams":[]}'), /self-signed|unable to verify|certificate/i);
    untrusting.close();
    // The transport's caFile option, from a bundle file.
    writeFileSync(join(dir, 'S001.env'), `STORE_ID=S001\nLOKI_URL=https://obs.test.internal:${port}\nLOKI_USERNAME=S001\nLOKI_PASSWORD=${TOKEN}\n`);
    const tr = new LokiTransport({ bundlePath: join(dir, 'S001.env'), caFile: join(dir, 'ca.crt'), connectTo: '127.0.0.1', service: 'pos-backend', spoolDir: join(dir, 'spool'), startupJitterMs: 0, batchWaitMs: 0, heartbeatIntervalMs: 0, onError: () => undefined });
    tr.append({ level: 'info', line: 'via caFile' });
    assert.equal(await tr.flush(30_000), true);
    await tr.shutdown(1000);
    await new Promise<void>((r) => server.close(() => r()));
    cleanup();
  });

  it('parses host:port, [v6]:port and bare hosts', () => {
    assert.deepEqual(parseHostPort('10.0.0.1:8443'), { host: '10.0.0.1', port: 8443 });
    assert.deepEqual(parseHostPort('[::1]:443'), { host: '::1', port: 443 });
    assert.deepEqual(parseHostPort('[::1]'), { host: '::1', port: undefined });
    assert.deepEqual(parseHostPort('obs'), { host: 'obs', port: undefined });
  });
});

describe('transport from the environment', () => {
  it('reads the bundle variables from process.env when no bundle is given', async () => {
    const { dir, cleanup } = tempDir();
    const saved = { ...process.env };
    Object.assign(process.env, { STORE_ID: 'S009', LOKI_URL: 'http://127.0.0.1:9', LOKI_PASSWORD: TOKEN });
    delete process.env.LOKI_BUNDLE_FILE;
    try {
      const t = new LokiTransport({ service: 'pos-backend', spoolDir: dir, heartbeatIntervalMs: 0, startupJitterMs: 60_000 });
      assert.equal(t.bundle.storeId, 'S009');
      assert.equal((await t.shutdown(10)).drained, true);
      t.close();
    } finally {
      process.env = saved;
      cleanup();
    }
  });
});
