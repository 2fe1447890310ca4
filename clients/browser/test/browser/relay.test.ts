import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { TestWindow } from '../pages/types.js';
import { type Launched, inContext, launch, until } from '../helpers/browser.js';
import { logLines, openPage, seqs } from '../helpers/fixture.js';
import { type RelayApp, startRelayApp } from '../helpers/relay-app.js';

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/**
 * The default target: the POS page posts to its own store backend, a real
 * NestJS app using @obs/loki-transport's module (relay route, disk spool),
 * which pushes to the transport's test upstream. No credential in the page.
 */
describe('relay target: the page -> NestJS backend (@obs/loki-transport) -> test upstream', () => {
  let app: RelayApp;
  let b: Launched;
  before(async () => {
    app = await startRelayApp();
    b = await launch();
  });
  after(async () => {
    await b.close();
    await app.close();
  });

  const frontend = (): { line: string; labels: Record<string, string> }[] => app.upstream.entries().filter((e) => e.labels.service === 'pos-frontend');

  it('end to end: every line arrives at the upstream with the backend\'s labels and the page\'s metadata; gzip bodies', async () => {
    await inContext(b.browser, 'relay-e2e', async (ctx) => {
      const { page } = await openPage(ctx, app.url, { batchWaitMs: 50, terminal: 'T9', user: 'cashier-4', console: false });
      await logLines(page, 'relay', 300);
      assert.equal(await page.evaluate(() => (window as unknown as TestWindow).logger.flush(30_000)), true);
      assert.equal(await app.transport.flush(30_000), true);
      const lines = frontend().map((e) => e.line);
      const got = seqs(lines, 'relay');
      console.log(`# relay: logged 300, delivered ${new Set(got).size}/300 to the test upstream through the NestJS relay (${app.relayed.length} relay requests, gzip ${app.relayed.filter((r) => r.contentEncoding === 'gzip').length})`);
      assert.deepEqual([...got].sort((x, y) => x - y), range(300));
      const e = frontend()[0];
      assert.ok(e);
      assert.deepEqual(Object.keys(e.labels).sort(), ['environment', 'instance', 'level', 'service', 'store']);
      assert.equal(e.labels.store, 'S001');
      assert.equal(e.labels.environment, 'test');
      const session = await page.evaluate(() => (window as unknown as TestWindow).logger.session);
      const pushed = app.upstream.requests.flatMap((r) => r.entries).find((x) => x.line.includes('"message":"relay seq=7"'));
      assert.ok(pushed);
      assert.equal(pushed.labels.level, 'error');
      assert.deepEqual(
        { terminal: pushed.meta?.terminal_id, user: pushed.meta?.user_id, order: pushed.meta?.order_id, session: pushed.meta?.session, page: pushed.meta?.page },
        { terminal: 'T9', user: 'cashier-4', order: 'O-7', session, page: '/test/pages/page.html' },
      );
      assert.ok(app.relayed.some((r) => r.contentEncoding === 'gzip'), 'bodies over 1 KiB go gzip\'d (CompressionStream)');
      assert.ok(app.relayed.every((r) => r.contentType === 'application/json'));
      const s = await page.evaluate(() => (window as unknown as TestWindow).logger.stats());
      assert.equal(s.sent, 300);
      assert.equal(s.relayDropped, 0);
      assert.equal(s.statuses['200'], s.requests);
    });
  });

  it('unload through the relay: logs 600 and navigates at once; keepalive and the next load deliver all; a resent batch keeps its identity, nothing is spooled twice', async () => {
    const before = frontend().length;
    const dupBefore = app.upstream.duplicates;
    await inContext(b.browser, 'relay-unload', async (ctx) => {
      const config = { batchWaitMs: 2000, console: false };
      const { page } = await openPage(ctx, app.url, config);
      await until(async () => (await page.evaluate(() => (window as unknown as TestWindow).logger.stats())).leader, 30_000, 'the page leads');
      await page.evaluate(() => {
        const w = window as unknown as TestWindow;
        for (let i = 0; i < 600; i += 1) w.logger.info(`relay-unload seq=${i}`);
        location.href = '/test/pages/next.html';
      });
      await page.waitForURL('**/next.html');
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(await app.transport.flush(30_000), true);
      const byKeepalive = new Set(seqs(frontend().map((e) => e.line), 'relay-unload')).size;
      await openPage(ctx, app.url, config, {}, page);
      assert.equal(await page.evaluate(() => (window as unknown as TestWindow).logger.flush(30_000)), true);
      assert.equal(await app.transport.flush(30_000), true);
      const s = await page.evaluate(() => (window as unknown as TestWindow).logger.stats());
      const got = seqs(frontend().map((e) => e.line), 'relay-unload');
      console.log(
        `# relay unload: logged 600, delivered by keepalive ${byKeepalive}, the rest on the next load; delivered ${new Set(got).size}/600; resent batches the relay answered duplicate: ${s.duplicates}; copies the transport pushed twice: ${app.upstream.duplicates - dupBefore} (collapsed as Loki does)`,
      );
      assert.deepEqual([...new Set(got)].sort((x, y) => x - y), range(600));
      assert.equal(app.upstream.duplicates - dupBefore, 0, 'every resend carried its batch identity: the relay spooled nothing twice');
      assert.ok(frontend().length - before >= 600);
    });
  });
});
