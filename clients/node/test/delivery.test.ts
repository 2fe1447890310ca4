import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import winston from 'winston';
import { TestUpstream, appEntries } from './helpers/upstream';
import { makeTransport, tempDir, TOKEN, waitFor } from './helpers/setup';

describe('delivery to a test upstream', () => {
  let up: TestUpstream;
  before(async () => {
    up = await new TestUpstream().start();
  });
  after(async () => {
    await up.close();
  });

  it('pushes gzip JSON with basic auth, the five labels, ns timestamps and structured metadata', async () => {
    const { dir, cleanup } = tempDir();
    up.handler = () => ({ status: 204 });
    const { t } = makeTransport(up, dir);
    const logger = winston.createLogger({ level: 'debug', format: winston.format.json(), transports: [t] });
    logger.info('sale completed', { order_id: 'O-1', terminalId: 'T3', traceId: 'abc' });
    logger.error('printer offline');
    logger.debug('cache warm');
    assert.equal(await t.flush(30_000), true);
    const req = up.requests[up.requests.length - 1];
    assert.ok(req);
    assert.equal(req.headers['content-type'], 'application/json');
    assert.equal(req.headers['content-encoding'], 'gzip');
    assert.equal(req.headers.authorization, `Basic ${Buffer.from(`S001:${TOKEN}`).toString('base64')}`);
    const all = up.requests.flatMap((r) => r.entries);
    const sale = all.find((e) => e.line.includes('sale completed'));
    assert.ok(sale);
    assert.deepEqual(sale.labels, { store: 'S001', service: 'pos-backend', environment: 'test', instance: 'test-1', level: 'info' });
    assert.deepEqual(sale.meta, { order_id: 'O-1', terminal_id: 'T3', trace_id: 'abc' });
    assert.match(sale.ts, /^\d{19}$/);
    assert.equal(JSON.parse(sale.line).message, 'sale completed');
    assert.deepEqual(new Set(all.map((e) => e.labels.level)), new Set(['info', 'error', 'debug']));
    for (const r of up.requests) assert.equal(new Set(r.entries.map((e) => JSON.stringify(e.labels))).size, 1, 'one stream per push');
    const ts = all.map((e) => BigInt(e.ts));
    assert.equal(new Set(ts).size, ts.length, 'timestamps are unique');
    assert.equal(t.snapshot().sent, 3);
    await t.shutdown(1000);
    cleanup();
  });

  it('keeps identical lines logged in the same millisecond apart (tie-break), in order', async () => {
    const { dir, cleanup } = tempDir();
    up.handler = () => ({ status: 204 });
    const { t } = makeTransport(up, dir, { instance: 'tie-1' });
    for (let i = 0; i < 500; i += 1) t.append({ level: 'info', line: 'same line' });
    assert.equal(await t.flush(30_000), true);
    const mine = appEntries(up, 'tie-1');
    assert.equal(mine.length, 500);
    const ts = mine.map((e) => BigInt(e.ts));
    for (let i = 1; i < ts.length; i += 1) assert.ok((ts[i] as bigint) > (ts[i - 1] as bigint));
    await t.shutdown(1000);
    cleanup();
  });

  it('caps batches by lines and bytes', async () => {
    const { dir, cleanup } = tempDir();
    up.handler = () => ({ status: 204 });
    const before = up.requests.length;
    const { t } = makeTransport(up, dir, { instance: 'cap-1', batchMaxLines: 100, batchMaxBytes: 20000 });
    for (let i = 0; i < 1000; i += 1) t.append({ level: 'info', line: `line ${i} ${'x'.repeat(100)}` });
    assert.equal(await t.flush(30_000), true);
    const reqs = up.requests.slice(before);
    assert.ok(reqs.length >= 10, `${reqs.length} requests`);
    for (const r of reqs) {
      assert.ok(r.entries.length <= 100);
      assert.ok(r.entries.reduce((a, e) => a + e.line.length, 0) <= 20000 + 200);
    }
    const lines = appEntries(up, 'cap-1').map((e) => e.line);
    assert.equal(lines.length, 1000);
    assert.deepEqual(lines, [...lines].sort((a, b) => Number(a.split(' ')[1]) - Number(b.split(' ')[1])), 'oldest first');
    await t.shutdown(1000);
    cleanup();
  });

  it('retries 5xx and a reset connection, then delivers everything once', async () => {
    const { dir, cleanup } = tempDir();
    let n = 0;
    up.handler = () => {
      n += 1;
      if (n === 1) return { status: 503, body: 'upstream down' };
      if (n === 2) return 'reset';
      if (n === 3) return { status: 502 };
      return { status: 204 };
    };
    const { t } = makeTransport(up, dir, { instance: 'retry-1' });
    for (let i = 0; i < 20; i += 1) t.append({ level: 'warn', line: `w${i}` });
    assert.equal(await t.flush(30_000), true);
    const s = t.snapshot();
    assert.equal(s.retries.server_error, 2);
    assert.equal(s.retries.network, 1);
    assert.ok(s.sent >= 20);
    assert.equal(appEntries(up, 'retry-1').length, 20);
    assert.equal(s.droppedTotal, 0);
    await t.shutdown(1000);
    cleanup();
  });

  it('a hung socket times out and the batch is retried', async () => {
    const { dir, cleanup } = tempDir();
    let n = 0;
    up.handler = () => (++n === 1 ? 'hang' : { status: 204 });
    const { t } = makeTransport(up, dir, { instance: 'hang-1', requestTimeoutMs: 300 });
    const start = Date.now();
    t.append({ level: 'error', line: 'during hang' });
    assert.equal(await t.flush(30_000), true);
    assert.ok(Date.now() - start >= 300, 'waited for the timeout');
    assert.equal(t.snapshot().retries.timeout, 1);
    assert.equal(t.snapshot().requests.timeout, 1);
    assert.deepEqual(appEntries(up, 'hang-1').map((e) => e.line), ['during hang']);
    await t.shutdown(1000);
    cleanup();
  });

  it('413 splits the batch until it fits; a single line that never fits is dead-lettered', async () => {
    const { dir, cleanup } = tempDir();
    up.handler = (req) => {
      const size = req.entries.reduce((a, e) => a + e.line.length, 0);
      return size > 3000 ? { status: 413, body: '<html>413 Request Entity Too Large</html>' } : { status: 204 };
    };
    const { t } = makeTransport(up, dir, { instance: 'split-1' });
    for (let i = 0; i < 40; i += 1) t.append({ level: 'info', line: `${i}:${'y'.repeat(200)}` });
    t.append({ level: 'info', line: 'z'.repeat(5000) });
    assert.equal(await t.flush(30_000), true);
    const got = appEntries(up, 'split-1');
    assert.equal(got.length, 40);
    assert.equal(t.snapshot().dropped.too_large, 1);
    assert.equal(appEntries(up, 'split-1').length, 40);
    await t.shutdown(1000);
    cleanup();
  });

  it('401 pauses sending without dropping, re-reads the bundle and resumes with the new token', async () => {
    const { dir, cleanup } = tempDir();
    const { writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const bundlePath = join(dir, 'S001.env');
    const write = (token: string): void =>
      writeFileSync(bundlePath, `STORE_ID=S001\nSTORE_NAME="Store 001 Downtown"\nLOKI_URL=http://127.0.0.1:${up.port}\nLOKI_PUSH_URL=${up.url}\nLOKI_USERNAME=S001\nLOKI_PASSWORD=${token}\n`);
    write('old-token-old-token-old-token-old-token-xx');
    const good = `Basic ${Buffer.from('S001:new-token-new-token-new-token-new-token-yy').toString('base64')}`;
    up.handler = (req) => (req.headers.authorization === good ? { status: 204 } : { status: 401, body: '401 Authorization Required' });
    const before = up.requests.length;
    const { t, events } = makeTransport(up, join(dir, 'spool'), { instance: 'auth-1', bundle: undefined, bundlePath, authRetryMs: 200 });
    for (let i = 0; i < 30; i += 1) t.append({ level: 'info', line: `a${i}` });
    await waitFor(() => t.snapshot().breakerState === 'auth_paused', 5000, 'auth pause');
    assert.ok(events.errors.some((m) => m.includes('HTTP 401')), 'an error is reported');
    assert.equal(t.snapshot().droppedTotal, 0);
    // Slow retries: probes only, one every authRetryMs, each at most probeLines lines.
    await new Promise((r) => setTimeout(r, 700));
    const probes = up.requests.slice(before);
    assert.ok(probes.length <= 6, `${probes.length} requests while paused`);
    for (const p of probes.slice(1)) assert.ok(p.entries.length <= 10);
    write('new-token-new-token-new-token-new-token-yy');
    assert.equal(await t.flush(30_000), true);
    assert.equal(appEntries(up, 'auth-1').length, 30);
    assert.equal(t.snapshot().breakerState, 'closed');
    await t.shutdown(1000);
    cleanup();
  });

  it('other 4xx (404, 415) pause like an auth refusal: configuration, not the lines', async () => {
    const { dir, cleanup } = tempDir();
    let n = 0;
    up.handler = () => (++n <= 2 ? { status: n === 1 ? 404 : 415, body: 'nope' } : { status: 204 });
    const { t } = makeTransport(up, dir, { instance: 'cfg-1', authRetryMs: 50 });
    t.append({ level: 'info', line: 'kept' });
    assert.equal(await t.flush(30_000), true);
    assert.equal(t.snapshot().droppedTotal, 0);
    assert.equal(t.snapshot().requests['404'], 1);
    await t.shutdown(1000);
    cleanup();
  });

  it('the cardinality guard refuses label keys it was not given at start (they go to metadata)', async () => {
    const { dir, cleanup } = tempDir();
    up.handler = () => ({ status: 204 });
    const { t } = makeTransport(up, dir, { instance: 'card-1', dynamicLabels: ['module'], maxLabelValues: 2 });
    const logger = winston.createLogger({ transports: [t] });
    logger.info('one', { labels: { module: 'sales' } });
    logger.info('two', { labels: { module: 'stock' } });
    logger.info('three', { labels: { module: 'third-value' } });
    logger.info('four', { labels: { user: 'u-123' } });
    assert.equal(await t.flush(30_000), true);
    const got = up.requests.flatMap((r) => r.entries).filter((e) => e.labels.instance === 'card-1');
    const by = (m: string) => got.find((e) => e.line.includes(m));
    assert.equal(by('one')?.labels.module, 'sales');
    assert.equal(by('two')?.labels.module, 'stock');
    assert.equal(by('three')?.labels.module, undefined);
    assert.equal(by('three')?.meta?.module, 'third-value');
    assert.equal(by('four')?.labels.user, undefined);
    assert.equal(by('four')?.meta?.user, 'u-123');
    assert.equal(t.labelsRefused, 2);
    assert.match(t.prometheus(), /loki_transport_labels_refused_total\{[^}]*\} 2/);
    await t.shutdown(1000);
    cleanup();
  });

  it('a log call can never change the store label', async () => {
    const { dir, cleanup } = tempDir();
    up.handler = () => ({ status: 204 });
    const { t } = makeTransport(up, dir, { instance: 'store-1' });
    t.logInfo({ level: 'info', message: 'x', labels: { store: 'S999', instance: 'evil' } });
    assert.equal(await t.flush(30_000), true);
    const e = up.requests.flatMap((r) => r.entries).find((x) => x.labels.instance === 'store-1');
    assert.equal(e?.labels.store, 'S001');
    assert.equal(e?.meta?.store, 'S999');
    await t.shutdown(1000);
    cleanup();
  });
});
