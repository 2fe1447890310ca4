import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { TestWindow } from '../pages/types.js';
import { inContext } from '../helpers/browser.js';
import { ALLOWED, DENIED, type DirectFixture, PUSH_URL, TOKEN, directConfig, directFixture, logLines, openPage, seqs } from '../helpers/fixture.js';

/**
 * The direct target from a real Chromium through the HTTPS test edge, whose
 * push route answers CORS the way the nginx edge does (P0-3: CORS proven by
 * a browser, not by hand-made Origin headers).
 */
describe('direct target: CORS in a real browser', () => {
  let f: DirectFixture;
  before(async () => {
    f = await directFixture();
  });
  after(async () => {
    await f.close();
  });

  it('a page from an allowed origin pushes directly: every line arrives, labels and metadata as documented', async () => {
    f.edge.reset();
    await inContext(f.launched.browser, 'cors-allowed', async (ctx) => {
      const { page } = await openPage(ctx, ALLOWED, directConfig());
      for (let chunk = 0; chunk < 4; chunk += 1) {
        await logLines(page, 'allowed', 50, chunk * 50);
        await new Promise((r) => setTimeout(r, 120));
      }
      const flushed = await page.evaluate(() => (window as unknown as TestWindow).logger.flush(10_000));
      assert.equal(flushed, true);
      const got = seqs(f.edge.lines(), 'allowed');
      console.log(`# cors-allowed: delivered ${new Set(got).size}/200, resent copies ${f.edge.resent}`);
      assert.deepEqual(got, Array.from({ length: 200 }, (_, i) => i), 'all 200, in order');
      const posts = f.edge.requests.filter((r) => r.method === 'POST');
      assert.ok(posts.every((r) => r.origin === ALLOWED && r.status === 204));
      assert.ok(f.edge.preflights >= 1, 'Authorization forces a CORS preflight');
      assert.ok(f.edge.preflights < posts.length || posts.length === 1, `the preflight is cached (Access-Control-Max-Age): ${f.edge.preflights} preflights for ${posts.length} pushes`);
      const e = f.edge.entries()[7];
      assert.ok(e);
      assert.deepEqual(e.labels, { service: 'pos-frontend', store: 'S001', environment: 'test' });
      assert.equal(e.meta?.terminal_id, 'T1');
      assert.equal(e.meta?.order_id, 'O-7');
      assert.equal(e.meta?.page, '/test/pages/page.html');
      assert.match(e.meta?.session ?? '', /^[A-Za-z0-9_-]{16}$/);
      const line = JSON.parse(e.line) as { level: string; message: string; error: { name: string; message: string; stack: string } };
      assert.equal(line.level, 'error');
      assert.equal(line.message, 'allowed seq=7');
      assert.equal(line.error.message, 'failure 7');
      assert.match(line.error.stack, /Error: failure 7/);
      const stats = await page.evaluate(() => (window as unknown as TestWindow).logger.stats());
      assert.equal(stats.sent, 200);
      assert.equal(stats.spool.entries, 0);
      assert.equal(stats.spool.delivered, 200);
      assert.equal(stats.leader, true);
      assert.equal(stats.locked, true);
      assert.equal(stats.spoolKind, 'indexeddb');
    });
  });

  it('the same page from a disallowed origin is blocked by the browser itself: the CORS error is read, nothing is sent, nothing is lost', async () => {
    f.edge.reset();
    await inContext(f.launched.browser, 'cors-denied', async (ctx) => {
      const { page, log } = await openPage(ctx, DENIED, directConfig({ backoffBaseMs: 5000 }));
      await logLines(page, 'denied', 5);
      assert.equal(await page.evaluate(() => (window as unknown as TestWindow).logger.flush(1500)), false);
      const raw = await page.evaluate(async ({ url, token }) => {
        try {
          const r = await fetch(url, { method: 'POST', headers: { Authorization: `Basic ${btoa(`S001:${token}`)}`, 'Content-Type': 'application/json' }, body: '{"streams":[]}' });
          return `status ${r.status}`;
        } catch (err) {
          return String(err);
        }
      }, { url: PUSH_URL, token: TOKEN });
      assert.equal(raw, 'TypeError: Failed to fetch', 'the fetch rejects: the page gets no response');
      const cors = log.console.find((m) => m.includes('blocked by CORS policy'));
      assert.ok(cors, `Chromium reports the CORS refusal on the console: ${log.console.join(' | ')}`);
      assert.match(cors, new RegExp(`from origin '${DENIED}' has been blocked by CORS policy`));
      console.log(`# cors-denied: blocked by the browser: ${cors}`);
      const d = await page.evaluate(() => (window as unknown as TestWindow).deliveries);
      assert.ok(d.length >= 1);
      assert.equal(d[0]?.status, null);
      assert.equal(d[0]?.error, 'TypeError: Failed to fetch');
      assert.equal(f.edge.requests.filter((r) => r.method === 'POST').length, 0, 'no POST ever reached the edge');
      assert.ok(f.edge.preflights >= 1);
      const stats = await page.evaluate(() => (window as unknown as TestWindow).logger.stats());
      assert.equal(stats.spool.entries, 5, 'the lines wait in the spool');
      assert.equal(stats.statuses.network, d.length);
    });
  });

  it('a 401 is visible to the page with its status: slow retry (no tight loop), counted, nothing dropped', async () => {
    f.edge.reset();
    await inContext(f.launched.browser, 'cors-401', async (ctx) => {
      const { page, log } = await openPage(ctx, ALLOWED, directConfig({ password: 'wrong-token', authRetryMs: 1000 }));
      await logLines(page, 'unauthorized', 20);
      const start = Date.now();
      await page.evaluate(() => (window as unknown as TestWindow).logger.flush(2500));
      const took = Date.now() - start;
      const d = await page.evaluate(() => (window as unknown as TestWindow).deliveries);
      assert.equal(d[0]?.status, 401);
      assert.equal(d[0]?.outcome, 'pause');
      assert.equal(d[0]?.waitMs, 1000);
      const posts = f.edge.requests.filter((r) => r.method === 'POST');
      assert.ok(posts.every((r) => r.status === 401));
      assert.ok(posts.length <= Math.ceil(took / 1000) + 1, `${posts.length} attempts in ${took} ms: one per authRetryMs`);
      const stats = await page.evaluate(() => (window as unknown as TestWindow).logger.stats());
      assert.equal(stats.authErrors, posts.length);
      assert.equal(stats.pauseReason, 'auth');
      assert.equal(stats.spool.entries, 20, 'nothing dropped');
      assert.equal(log.console.filter((m) => m.includes('answered 401')).length, 1, 'reported once on the console');
    });
  });

  it('a 429 is visible with its status and (exposed) Retry-After: the logger waits as told, then delivers', async () => {
    f.edge.reset();
    let n = 0;
    f.edge.fault = () => (++n <= 2 ? { status: 429, headers: { 'Retry-After': '1' }, body: '429 Too Many Requests (test edge)' } : undefined);
    await inContext(f.launched.browser, 'cors-429', async (ctx) => {
      const { page } = await openPage(ctx, ALLOWED, directConfig());
      await logLines(page, 'limited', 30);
      assert.equal(await page.evaluate(() => (window as unknown as TestWindow).logger.flush(30_000)), true);
      const d = await page.evaluate(() => (window as unknown as TestWindow).deliveries);
      assert.equal(d[0]?.status, 429);
      assert.equal(d[0]?.retryAfter, '1');
      assert.ok((d[0]?.waitMs ?? 0) >= 1000);
      const posts = f.edge.requests.filter((r) => r.method === 'POST');
      for (let i = 1; i < 3; i += 1) assert.ok((posts[i]?.at ?? 0) - (posts[i - 1]?.at ?? 0) >= 950, 'each retry waited Retry-After');
      assert.deepEqual(seqs(f.edge.lines(), 'limited'), Array.from({ length: 30 }, (_, i) => i));
    });
  });

  it('a 429 whose Retry-After is not exposed reads as null, and the logger still backs off (no tight loop)', async () => {
    f.edge.reset();
    f.edge.exposeRetryAfter = false;
    try {
      f.edge.fault = () => ({ status: 429, headers: { 'Retry-After': '1' }, body: '429 Too Many Requests (test edge)' });
      await inContext(f.launched.browser, 'cors-429-hidden', async (ctx) => {
        const { page } = await openPage(ctx, ALLOWED, directConfig({ rateLimitFallbackMs: 1000 }));
        await logLines(page, 'hidden', 10);
        await page.evaluate(() => (window as unknown as TestWindow).logger.flush(3000));
        const d = await page.evaluate(() => (window as unknown as TestWindow).deliveries);
        assert.ok(d.length >= 1);
        assert.ok(d.every((e) => e.status === 429 && e.retryAfter === null && e.waitMs >= 1000), JSON.stringify(d));
        const posts = f.edge.requests.filter((r) => r.method === 'POST');
        assert.ok(posts.length <= 4, `${posts.length} attempts in 3 s`);
        f.edge.fault = undefined;
        assert.equal(await page.evaluate(() => (window as unknown as TestWindow).logger.flush(30_000)), true);
        assert.deepEqual(seqs(f.edge.lines(), 'hidden'), Array.from({ length: 10 }, (_, i) => i));
      });
    } finally {
      f.edge.exposeRetryAfter = true;
    }
  });

  it('gzip in the direct target (the default): bodies of 1 KiB and more go gzip\'d through the edge\'s preflight (Content-Encoding allowed), one preflight for plain and gzip\'d pushes', async () => {
    f.edge.reset();
    await inContext(f.launched.browser, 'cors-gzip', async (ctx) => {
      const { page } = await openPage(ctx, ALLOWED, directConfig());
      await logLines(page, 'gzip', 1);
      assert.equal(await page.evaluate(() => (window as unknown as TestWindow).logger.flush(30_000)), true);
      await logLines(page, 'gzip', 60, 1);
      assert.equal(await page.evaluate(() => (window as unknown as TestWindow).logger.flush(30_000)), true);
      const posts = f.edge.requests.filter((r) => r.method === 'POST');
      const gz = posts.filter((r) => r.contentEncoding === 'gzip');
      console.log(`# cors-gzip: ${posts.length} pushes, ${gz.length} gzip'd (${gz.map((r) => r.bytes).join(', ')} bytes), ${f.edge.preflights} preflight(s); delivered ${new Set(seqs(f.edge.lines(), 'gzip')).size}/61`);
      assert.equal(posts[0]?.contentEncoding, undefined, 'a body under 1 KiB goes as it is');
      assert.ok(gz.length >= 1 && gz.every((r) => r.status === 204));
      assert.equal(f.edge.preflights, 1, 'the one preflight (Authorization) allowed Content-Encoding too: cached for the gzip\'d pushes');
      assert.deepEqual(seqs(f.edge.lines(), 'gzip'), Array.from({ length: 61 }, (_, i) => i));
      const s = await page.evaluate(() => (window as unknown as TestWindow).logger.stats());
      assert.equal(s.gzipRequests, gz.length);
      assert.equal(s.gzipRefused, false);
      const d = await page.evaluate(() => (window as unknown as TestWindow).deliveries);
      assert.deepEqual(d.map((e) => e.gzip), posts.map((r) => r.contentEncoding === 'gzip'));
    });
  });

  it('an edge whose preflight does not allow Content-Encoding (an older one): the browser blocks the gzip\'d push, the same batch goes uncompressed and arrives, gzip stays off for the page; nothing lost', async () => {
    f.edge.reset();
    f.edge.allowHeaders = 'Authorization, Content-Type';
    try {
      await inContext(f.launched.browser, 'cors-gzip-refused', async (ctx) => {
        const { page, log } = await openPage(ctx, ALLOWED, directConfig());
        await logLines(page, 'refused', 20);
        assert.equal(await page.evaluate(() => (window as unknown as TestWindow).logger.flush(30_000)), true);
        const refusal = log.console.find((m) => m.includes('blocked by CORS policy'));
        assert.match(refusal ?? '', /Request header field content-encoding is not allowed by Access-Control-Allow-Headers in preflight response/);
        const d = await page.evaluate(() => (window as unknown as TestWindow).deliveries);
        assert.deepEqual(d.slice(0, 2).map((e) => [e.status, e.gzip]), [[null, true], [204, false]]);
        assert.ok(log.console.some((m) => m.includes('sending uncompressed')), 'reported on the console');
        await logLines(page, 'refused', 20, 20);
        assert.equal(await page.evaluate(() => (window as unknown as TestWindow).logger.flush(30_000)), true);
        const posts = f.edge.requests.filter((r) => r.method === 'POST');
        assert.ok(posts.length >= 2 && posts.every((r) => r.contentEncoding === undefined), 'no gzip\'d push ever got through the preflight');
        assert.deepEqual(seqs(f.edge.lines(), 'refused'), Array.from({ length: 40 }, (_, i) => i));
        const s = await page.evaluate(() => (window as unknown as TestWindow).logger.stats());
        assert.equal(s.gzipRefused, true);
        assert.equal(s.gzipRequests, 1);
        console.log(`# cors-gzip-refused: 1 gzip'd push blocked by the preflight, then ${posts.length} uncompressed; delivered ${new Set(seqs(f.edge.lines(), 'refused')).size}/40`);
      });
    } finally {
      f.edge.allowHeaders = undefined;
    }
  });
});
