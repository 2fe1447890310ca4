import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { TestWindow } from '../pages/types.js';
import { inContext, until } from '../helpers/browser.js';
import { ALLOWED, type DirectFixture, directConfig, directFixture, openPage } from '../helpers/fixture.js';

/** The logging API in a real page: captured errors and rejections, the console, levels, metadata setters. */
describe('logging API in a real browser', () => {
  let f: DirectFixture;
  before(async () => {
    f = await directFixture();
  });
  after(async () => {
    await f.close();
  });

  it('uncaught errors (window.onerror) and unhandled rejections become error lines; the app\'s own handler still runs', async () => {
    f.edge.reset();
    await inContext(f.launched.browser, 'api-capture', async (ctx) => {
      const { page } = await openPage(ctx, ALLOWED, directConfig());
      await page.evaluate(() => {
        const w = window as unknown as TestWindow;
        w.appHandlerSaw = 0;
        window.onerror = () => {
          w.appHandlerSaw = Number(w.appHandlerSaw) + 1;
          return false;
        };
        setTimeout(() => {
          throw new TypeError('boom at the till');
        }, 0);
        void Promise.reject(new RangeError('nope, rejected'));
      });
      await until(() => f.edge.lines().length >= 2, 30_000, 'two captured lines');
      const lines = f.edge.lines().map((l) => JSON.parse(l) as { level: string; message: string; source: string; lineno?: number; error: { name: string; stack?: string } });
      const thrown = lines.find((l) => l.message.includes('boom at the till'));
      const rejected = lines.find((l) => l.message === 'unhandled rejection: nope, rejected');
      assert.ok(thrown && rejected, JSON.stringify(lines));
      assert.equal(thrown.level, 'error');
      assert.equal(thrown.source, 'window.onerror');
      assert.equal(thrown.error.name, 'TypeError');
      assert.ok((thrown.lineno ?? 0) > 0);
      assert.equal(rejected.source, 'unhandledrejection');
      assert.equal(rejected.error.name, 'RangeError');
      assert.equal(await page.evaluate(() => (window as unknown as TestWindow).appHandlerSaw), 1);
    });
  });

  it('captured errors are rate limited (counted capture_rate); console output by level; debug below the level is not sent; setUser', async () => {
    f.edge.reset();
    await inContext(f.launched.browser, 'api-console', async (ctx) => {
      const { page, log } = await openPage(ctx, ALLOWED, directConfig({ console: 'info', captureMaxPerMinute: 3 }));
      await page.evaluate(async () => {
        const w = window as unknown as TestWindow;
        for (let i = 0; i < 5; i += 1) setTimeout(() => { throw new Error(`loop error ${i}`); }, 0);
        await new Promise((r) => setTimeout(r, 50));
        w.logger.debug('debug only on the console? no: below console level too');
        w.logger.info('sale done', { orderId: 'O-9' });
        w.logger.setUser('cashier-7');
        w.logger.warn('drawer open');
        w.logger.error('payment failed', new Error('declined'), { order_id: 'O-10' });
        await w.logger.flush(5000);
      });
      const lines = f.edge.entries();
      assert.equal(lines.filter((e) => e.line.includes('loop error')).length, 3, 'three captured, two counted');
      const s = await page.evaluate(() => (window as unknown as TestWindow).logger.stats());
      assert.equal(s.spool.dropped.byReason.capture_rate, 2);
      assert.equal(lines.some((e) => e.line.includes('debug only')), false);
      const sale = lines.find((e) => e.line.includes('sale done'));
      const drawer = lines.find((e) => e.line.includes('drawer open'));
      assert.equal(sale?.meta?.order_id, 'O-9');
      assert.equal(sale?.meta?.user_id, undefined);
      assert.equal(drawer?.meta?.user_id, 'cashier-7');
      assert.ok(log.console.some((m) => m.startsWith('info: sale done')), log.console.join(' | '));
      assert.ok(log.console.some((m) => m.startsWith('warning: drawer open')));
      assert.ok(log.console.some((m) => m.startsWith('error: payment failed')));
      assert.equal(log.console.some((m) => m.includes('debug only')), false);
    });
  });
});
