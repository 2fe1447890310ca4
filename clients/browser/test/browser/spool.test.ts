import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import type { LabWindow } from '../pages/types.js';
import { inContext } from '../helpers/browser.js';
import { ALLOWED, type DirectFixture, directFixture } from '../helpers/fixture.js';

async function lab(page: Page): Promise<void> {
  await page.goto(`${ALLOWED}/test/pages/lab.html`);
  await page.waitForFunction(() => (window as unknown as LabWindow).ready === true);
}

/**
 * The IndexedDB spool in Chromium: the byte cap drops the oldest debug, then
 * the oldest info lines, never warn/error, never a pending batch's, counted
 * by level, exactly as the memory spool (the unit-tested reference) and the
 * Node transport; and every tab of the origin sees one spool.
 */
describe('IndexedDB spool in a real browser', () => {
  let f: DirectFixture;
  before(async () => {
    f = await directFixture();
  });
  after(async () => {
    await f.close();
  });

  it('byte cap by level, pending batches protected, counted: the same outcome as the memory spool', async () => {
    await inContext(f.launched.browser, 'spool-cap', async (ctx) => {
      const page = await ctx.newPage();
      await lab(page);
      const results = await page.evaluate(async () => {
        const { lab } = window as unknown as LabWindow;
        const one = lab.mk('info', 0).b;
        const run = async (spool: import('../../src/spool-types.js').Spool) => {
          const debug = Array.from({ length: 10 }, (_, i) => lab.mk('debug', i));
          const info = Array.from({ length: 10 }, (_, i) => lab.mk('info', i));
          const warn = Array.from({ length: 10 }, (_, i) => lab.mk('warn', i));
          await spool.append([...debug, ...info, ...warn]);
          // Two info lines in flight: never evicted.
          const inflight = info.slice(0, 2).map((e) => e.k);
          await spool.savePending({ key: 'labsessionAAAAAA:0', session: 'labsessionAAAAAA', batch: 0, keys: inflight, at: Date.now() });
          const r = await spool.append(Array.from({ length: 15 }, (_, i) => lab.mk('error', i)));
          await spool.append(Array.from({ length: 20 }, (_, i) => lab.mk('error', 100 + i)));
          const refused = await spool.append([lab.mk('debug', 999)]);
          const st = await spool.state();
          const head = await spool.head({ maxEntries: 1000, maxBytes: 1e9 }, new Set());
          const pend = await spool.pendings();
          return {
            evicted: r.evicted, refused: refused.refused.length, entries: st.entries, pending: st.pending, overCap: st.bytes > one * 30,
            dropped: st.dropped, pendingKept: (await spool.loadPending(pend[0] ?? { key: '', session: '', batch: 0, keys: [], at: 0 })).length,
            firstInfoLeft: head.entries.find((e) => e.level === 'info')?.line.slice(22, 30), warnLeft: head.entries.filter((e) => e.level === 'warn').length,
          };
        };
        const idb = await lab.IdbSpool.open(`lab-cap-${Math.random()}`, one * 30);
        const out = { idb: await run(idb), memory: await run(new lab.MemorySpool(one * 30)) };
        idb.close();
        return out;
      });
      assert.deepEqual(results.idb, results.memory, 'IndexedDB and memory spools agree');
      const r = results.idb;
      assert.equal(r.evicted, 15);
      assert.equal(r.dropped.byLevel.debug, 11, 'all 10 old debug lines, then the new one');
      assert.equal(r.dropped.byLevel.info, 8, 'the oldest info lines, but not the two in flight');
      assert.equal(r.dropped.byLevel.warn + r.dropped.byLevel.error, 0, 'warn and error never');
      assert.equal(r.dropped.byReason.spool_full, 19);
      assert.equal(r.refused, 1);
      assert.equal(r.pendingKept, 2);
      assert.equal(r.warnLeft, 10);
      assert.equal(r.overCap, true, 'warn/error go in over the cap');
      console.log(`# spool cap: ${JSON.stringify(r.dropped.byLevel)} dropped by level, pending kept ${r.pendingKept}, warn kept ${r.warnLeft}/10`);
    });
  });

  it('one spool for every tab of the origin; restore (the unload rescue) adds only what is missing', async () => {
    await inContext(f.launched.browser, 'spool-tabs', async (ctx) => {
      const a = await ctx.newPage();
      const b = await ctx.newPage();
      await lab(a);
      await lab(b);
      const name = `lab-shared-${Date.now()}`;
      await a.evaluate(async (name) => {
        const { lab } = window as unknown as LabWindow;
        const s = await lab.IdbSpool.open(name, 1e7);
        await s.append(Array.from({ length: 10 }, (_, i) => lab.mk('info', i, 'tabAsessionAAAAA')));
        s.close();
      }, name);
      const seen = await b.evaluate(async (name) => {
        const { lab } = window as unknown as LabWindow;
        const s = await lab.IdbSpool.open(name, 1e7);
        await s.append(Array.from({ length: 5 }, (_, i) => lab.mk('warn', i, 'tabBsessionAAAAA')));
        const head = await s.head({ maxEntries: 100, maxBytes: 1e9 }, new Set());
        const again = await s.restore(head.entries.slice(0, 3), []);
        const extra = await s.restore([lab.mk('error', 1, 'tabBsessionAAAAA')], []);
        const st = await s.state();
        s.close();
        return { head: head.entries.length, sessions: [...new Set(head.entries.map((e) => e.k.split('~')[1]))].sort(), again, extra, entries: st.entries };
      }, name);
      assert.deepEqual(seen, { head: 15, sessions: ['tabAsessionAAAAA', 'tabBsessionAAAAA'], again: 0, extra: 1, entries: 16 });
    });
  });
});
